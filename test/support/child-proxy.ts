// Portcullis as its own process (`portcullis run`), for tests that measure the process itself
// (memory) or drive it by signals.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export interface ChildProxy {
  readonly child: ChildProcess;
  readonly port: number;
  readonly adminPort: number;
  stderr(): string;
  stop(): Promise<number | null>;
}

export function startChildProxy(configFile: string): Promise<ChildProxy> {
  const child = spawn(process.execPath, [MAIN, 'run', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`proxy did not start:\n${stderr}`)), 15_000);
    child.on('exit', (code) => reject(new Error(`proxy exited with ${code}:\n${stderr}`)));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      const match = /"listen":"[^"]*:(\d+)","admin":"[^"]*:(\d+)"/.exec(stderr);
      if (match) {
        clearTimeout(timer);
        resolve({
          child,
          port: Number(match[1]),
          adminPort: Number(match[2]),
          stderr: () => stderr,
          stop: () =>
            new Promise((done) => {
              if (child.exitCode !== null) return done(child.exitCode);
              child.once('exit', (code) => done(code));
              child.kill('SIGTERM');
            }),
        });
      }
    });
  });
}

/** Peak and current resident memory of a process, in bytes (Linux /proc). */
export function memoryOf(pid: number): { peak: number; rss: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) * 1024;
  return { peak: kb('VmHWM'), rss: kb('VmRSS') };
}
