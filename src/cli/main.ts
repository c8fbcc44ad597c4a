// The `portcullis` command line (SPEC "Command line"). Edges only: parse arguments, call the
// stage that does the work, print, exit.
import { parseArgs } from 'node:util';
import { checkConfig } from './check.ts';
import { inspectSvid } from './svid-inspect.ts';
import { startDemo } from './demo.ts';
import { startInstance } from './instance.ts';
import { createLogger } from '../telemetry/logger.ts';

const USAGE = `usage:
  portcullis run --config FILE          run the proxy
  portcullis check --config FILE        validate config and policy
  portcullis demo                       the quickstart (dev CA, sample upstream, curl commands)
  portcullis svid inspect FILE.pem [--bundle FILE.pem]
`;

function fail(message: string, code = 2): never {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

function configFlag(args: string[]): string {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } }, strict: true });
  if (!values.config) fail(`--config FILE is required\n${USAGE}`);
  return values.config;
}

function onSignals(close: () => Promise<void>): void {
  let closing = false;
  const stop = () => {
    if (closing) return;
    closing = true;
    close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

export async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'run': {
      const file = configFlag(rest);
      const { config, problems } = checkConfig(file);
      if (!config || problems.length > 0) fail(problems.join('\n'), 1);
      const instance = await startInstance(config);
      onSignals(() => instance.close());
      return;
    }
    case 'check': {
      const file = configFlag(rest);
      const { problems } = checkConfig(file);
      if (problems.length > 0) fail(problems.join('\n'), 1);
      process.stdout.write(`${file}: ok\n`);
      return;
    }
    case 'demo': {
      const demo = await startDemo({ logger: createLogger(process.env.PORTCULLIS_LOG_LEVEL ?? 'warn') });
      process.stdout.write(demo.instructions);
      onSignals(() => demo.close());
      return;
    }
    case 'svid': {
      const [sub, ...args] = rest;
      if (sub !== 'inspect') fail(USAGE);
      const { values, positionals } = parseArgs({ args, options: { bundle: { type: 'string' } }, allowPositionals: true, strict: true });
      if (positionals.length !== 1) fail(`svid inspect takes one FILE.pem\n${USAGE}`);
      const result = inspectSvid(positionals[0]!, values.bundle);
      (result.ok ? process.stdout : process.stderr).write(`${result.text}\n`);
      process.exitCode = result.ok ? 0 : 1;
      return;
    }
    case undefined:
    case '-h':
    case '--help':
      process.stdout.write(USAGE);
      return;
    default:
      fail(`unknown command "${command}"\n${USAGE}`);
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  fail(`portcullis: ${(error as Error).message}`, 1);
});
