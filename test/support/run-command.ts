// A command run to its end, whatever its exit code, with what it printed: the CLI tests read the
// exit code as part of the contract (SPEC "Commands": 0, 1, 2), so a non-zero exit is a result,
// not a thrown error.
import { execFile, type ExecFileOptions } from 'node:child_process';
import { promisify } from 'node:util';
import { MAIN } from './child-proxy.ts';

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

const exec = promisify(execFile);

export async function runCommand(file: string, args: readonly string[], options: ExecFileOptions = {}): Promise<Ran> {
  try {
    const { stdout, stderr } = await exec(file, args, { ...options, encoding: 'utf8' });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as Ran;
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** `portcullis ARGS…` from the source, with the Node that runs the tests. */
export function runPortcullis(args: readonly string[], options: ExecFileOptions = {}): Promise<Ran> {
  return runCommand(process.execPath, [MAIN, ...args], options);
}
