// The `portcullis` command line (SPEC "Command line"). Edges only: parse arguments, call the
// stage that does the work, print, exit.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { checkConfig } from './check.ts';
import { inspectSvid, SVID_INSPECT_USAGE } from './svid-inspect.ts';
import { startDemo } from './demo.ts';
import { startInstance } from './instance.ts';
import { createLogger } from '../telemetry/logger.ts';
import { mintGrant, mintPosture, readPrivateKey } from './mint.ts';
import { parseSpiffeId } from '../identity/spiffe-id.ts';

const USAGE = `usage:
  portcullis run --config FILE          run the proxy
  portcullis check --config FILE        validate config and policy
  portcullis demo                       the quickstart (dev CA, sample upstream, curl commands)
  portcullis svid inspect FILE.pem [--bundle FILE.pem [--trust-domain TD]]
  portcullis grant mint --key PEM --iss URL --sub SPIFFE_ID --aud SPIFFE_ID --scope "a b" --ttl 5m
                        [--intent S] [--resources r1,r2] [--cnf-cert PEM] [--approver S] [--justification S] [--kid S]
  portcullis posture mint --key PEM --iss URL --sub SPIFFE_ID --trust low|medium|high --ttl 5m [--kid S]
`;

function fail(message: string, code = 2): never {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

function checkSpiffeId(what: string, value: string): void {
  try {
    parseSpiffeId(value);
  } catch (error) {
    fail(`${what}: expected a SPIFFE ID like spiffe://example.org/ns/prod/sa/web (${(error as Error).message})`);
  }
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
      const instance = await startInstance(config, { configFile: file });
      onSignals(() => instance.close());
      process.on('SIGHUP', () => instance.reload());
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
      const { values, positionals } = parseArgs({ args, options: { bundle: { type: 'string' }, 'trust-domain': { type: 'string' } }, allowPositionals: true, strict: true });
      if (positionals.length !== 1) fail(`svid inspect takes one FILE.pem\nusage: ${SVID_INSPECT_USAGE}`);
      const result = inspectSvid(positionals[0]!, { bundleFile: values.bundle, trustDomain: values['trust-domain'] });
      (result.code === 0 ? process.stdout : process.stderr).write(`${result.text}\n`);
      process.exitCode = result.code;
      return;
    }
    case 'grant': {
      const [sub, ...args] = rest;
      if (sub !== 'mint') fail(USAGE);
      const { values } = parseArgs({
        args,
        strict: true,
        options: Object.fromEntries(['key', 'iss', 'sub', 'aud', 'scope', 'ttl', 'intent', 'resources', 'cnf-cert', 'approver', 'justification', 'kid', 'jti'].map((k) => [k, { type: 'string' as const }])),
      });
      const v = values as Record<string, string | undefined>;
      for (const required of ['key', 'iss', 'sub', 'aud', 'scope', 'ttl']) if (!v[required]) fail(`grant mint: --${required} is required\n${USAGE}`);
      checkSpiffeId('grant mint: --sub', v.sub!);
      const token = await mintGrant({
        key: readPrivateKey(v.key!),
        iss: v.iss!,
        sub: v.sub!,
        aud: v.aud!,
        scope: v.scope!,
        ttl: v.ttl!,
        intent: v.intent,
        resources: v.resources?.split(',').map((r) => r.trim()).filter(Boolean),
        cnfCertPem: v['cnf-cert'] ? readFileSync(v['cnf-cert'], 'utf8') : undefined,
        approver: v.approver,
        justification: v.justification,
        kid: v.kid,
        jti: v.jti,
      });
      process.stdout.write(`${token}\n`);
      return;
    }
    case 'posture': {
      const [sub, ...args] = rest;
      if (sub !== 'mint') fail(USAGE);
      const { values } = parseArgs({ args, strict: true, options: Object.fromEntries(['key', 'iss', 'sub', 'trust', 'ttl', 'kid'].map((k) => [k, { type: 'string' as const }])) });
      const v = values as Record<string, string | undefined>;
      for (const required of ['key', 'iss', 'sub', 'trust', 'ttl']) if (!v[required]) fail(`posture mint: --${required} is required\n${USAGE}`);
      checkSpiffeId('posture mint: --sub', v.sub!);
      if (!['low', 'medium', 'high'].includes(v.trust!)) fail(`posture mint: --trust must be low, medium or high, got ${JSON.stringify(v.trust)}`);
      process.stdout.write(`${await mintPosture({ key: readPrivateKey(v.key!), iss: v.iss!, sub: v.sub!, trust: v.trust!, ttl: v.ttl!, kid: v.kid })}\n`);
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
