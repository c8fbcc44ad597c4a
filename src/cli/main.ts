// The `portcullis` command line (SPEC "Command line"). Edges only: parse arguments, call the
// stage that does the work, print, exit. Exit codes: 0 ok, 1 failure (bad config, the command
// failed), 2 usage (unknown command or flag, missing argument); `COMMAND --help` never runs it.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createLogger, LogLevelError, type Logger } from '../telemetry/logger.ts';
import { parseSpiffeId } from '../identity/spiffe-id.ts';
import { parseDuration } from '../config/duration.ts';
import { helpFor, USAGE, UsageError, usageOf } from './usage.ts';
import { VERSION } from '../version.ts';
// Every command loads its own modules when it runs (`await import`), so that --help and --version
// answer at once and `run` loads only what the proxy needs: svid inspect's X.509 library
// (@peculiar/x509 with tsyringe and reflect-metadata) and the mint commands' signer never load on
// the run path (test/budgets/start-modules.json keeps that list).

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

/** A bad --ttl is a bad flag value (exit 2), as a bad --sub or --trust is. */
function checkTtl(command: string, ttl: string): void {
  const ms = parseDuration(ttl);
  if (ms === undefined || ms <= 0) throw new UsageError(`${command}: --ttl: expected a duration like "5m", got ${JSON.stringify(ttl)}`, command);
}

type Flag = { type: 'string'; short?: string; multiple?: boolean } | { type: 'boolean'; short?: string };

/** Strict flags for one command: an unknown flag or a stray argument is a usage error naming it. */
function flags<T extends Record<string, Flag>>(command: string, args: string[], options: T): ReturnType<typeof parseArgs<{ args: string[]; options: T; strict: true }>>['values'] {
  try {
    return parseArgs({ args, options, strict: true }).values;
  } catch (error) {
    throw new UsageError(`${command}: ${(error as Error).message}`, command);
  }
}

function required(command: string, value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new UsageError(`${command}: ${flag} is required`, command);
  return value;
}

/** `--log-level` first, then PORTCULLIS_LOG_LEVEL, then the command's default; a bad one is a usage error. */
function loggerFor(command: string, flag: string | undefined, fallback: string): Logger {
  const fromEnv = flag === undefined ? process.env.PORTCULLIS_LOG_LEVEL : undefined;
  try {
    return createLogger(flag ?? fromEnv ?? fallback);
  } catch (error) {
    if (error instanceof LogLevelError) throw new UsageError(`${command}: ${flag === undefined ? 'PORTCULLIS_LOG_LEVEL' : '--log-level'}: ${error.message}`, command);
    throw error;
  }
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
  const help = helpFor(argv);
  if (help !== undefined) {
    process.stdout.write(help);
    return;
  }
  const [command, ...rest] = argv;
  switch (command) {
    case 'run': {
      const v = flags('run', rest, { config: { type: 'string', short: 'c' }, 'log-level': { type: 'string' } });
      const file = required('run', v.config, '--config FILE');
      const logger = loggerFor('run', v['log-level'], 'info');
      const { checkConfig, checkText } = await import('./check.ts');
      const { config, problems, warnings } = checkConfig(file);
      if (!config || problems.length > 0) fail(checkText(file, { problems, warnings: [] }).stderr.trimEnd(), 1);
      // The grant-floor warnings `check` prints reach whoever reads only the pod's logs too.
      for (const warning of warnings) logger.warn({ config: file, config_key: warning.key, line: warning.line }, warning.message); // not `key`: redacted as a secret
      const { startInstance } = await import('./instance.ts');
      // Signals are handled from before the start: a SIGTERM while starting exits 0, not by the signal.
      const running: { instance?: Awaited<ReturnType<typeof startInstance>> } = {};
      onSignals(() => running.instance?.close() ?? Promise.resolve());
      running.instance = await startInstance(config, { configFile: file, logger });
      process.on('SIGHUP', () => running.instance?.reload());
      return;
    }
    case 'check': {
      const v = flags('check', rest, { config: { type: 'string', short: 'c' }, offline: { type: 'boolean' }, format: { type: 'string' } });
      const file = required('check', v.config, '--config FILE');
      const format = v.format ?? 'text';
      if (format !== 'text' && format !== 'json') throw new UsageError(`check: --format must be text or json, got ${JSON.stringify(format)}`, 'check');
      const { checkConfig, checkJson, checkText } = await import('./check.ts');
      const result = checkConfig(file, { offline: v.offline });
      if (format === 'json') process.stdout.write(checkJson(file, result));
      else {
        const out = checkText(file, result);
        process.stdout.write(out.stdout);
        process.stderr.write(out.stderr);
      }
      process.exitCode = result.problems.length > 0 ? 1 : 0;
      return;
    }
    case 'demo': {
      const v = flags('demo', rest, { 'log-level': { type: 'string' } });
      const logger = loggerFor('demo', v['log-level'], 'warn');
      const { startDemo } = await import('./demo.ts');
      const demo = await startDemo({ logger });
      process.stdout.write(demo.instructions);
      onSignals(() => demo.close());
      return;
    }
    case 'dev-pki': {
      const v = flags('dev-pki', rest, { out: { type: 'string' }, 'trust-domain': { type: 'string' }, workload: { type: 'string', multiple: true }, force: { type: 'boolean' } });
      const out = required('dev-pki', v.out, '--out DIR');
      const trustDomain = required('dev-pki', v['trust-domain'], '--trust-domain TD');
      if (!v.workload || v.workload.length === 0) throw new UsageError('dev-pki: --workload NAME is required (at least one)', 'dev-pki');
      const { writeDevPki } = await import('./dev-pki-command.ts');
      const written = await writeDevPki({ out, trustDomain, workloads: v.workload, force: v.force ?? false });
      process.stdout.write(written.summary);
      return;
    }
    case 'svid': {
      const [sub, ...args] = rest;
      if (sub !== 'inspect') throw new UsageError(sub === undefined ? 'svid: expected a subcommand: inspect' : `svid: unknown subcommand "${sub}"`, 'svid inspect');
      let parsed;
      try {
        parsed = parseArgs({ args, options: { bundle: { type: 'string' }, 'trust-domain': { type: 'string' } }, allowPositionals: true, strict: true });
      } catch (error) {
        throw new UsageError(`svid inspect: ${(error as Error).message}`, 'svid inspect');
      }
      if (parsed.positionals.length !== 1) throw new UsageError('svid inspect takes one FILE.pem', 'svid inspect');
      const { inspectSvid } = await import('./svid-inspect.ts');
      const result = inspectSvid(parsed.positionals[0]!, { bundleFile: parsed.values.bundle, trustDomain: parsed.values['trust-domain'] });
      (result.code === 0 ? process.stdout : process.stderr).write(`${result.text}\n`);
      process.exitCode = result.code;
      return;
    }
    case 'grant': {
      const [sub, ...args] = rest;
      if (sub !== 'mint') throw new UsageError(sub === undefined ? 'grant: expected a subcommand: mint' : `grant: unknown subcommand "${sub}"`, 'grant mint');
      const v = flags('grant mint', args, Object.fromEntries(['key', 'iss', 'sub', 'aud', 'scope', 'ttl', 'intent', 'resources', 'cnf-cert', 'approver', 'justification', 'kid', 'jti'].map((k) => [k, { type: 'string' as const }]))) as Record<string, string | undefined>;
      for (const flag of ['key', 'iss', 'sub', 'aud', 'scope', 'ttl']) required('grant mint', v[flag], `--${flag}`);
      checkSpiffeId('grant mint: --sub', v.sub!);
      checkTtl('grant mint', v.ttl!);
      const { mintGrant, readPrivateKey } = await import('./mint.ts');
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
      if (sub !== 'mint') throw new UsageError(sub === undefined ? 'posture: expected a subcommand: mint' : `posture: unknown subcommand "${sub}"`, 'posture mint');
      const v = flags('posture mint', args, Object.fromEntries(['key', 'iss', 'sub', 'trust', 'ttl', 'kid'].map((k) => [k, { type: 'string' as const }]))) as Record<string, string | undefined>;
      for (const flag of ['key', 'iss', 'sub', 'trust', 'ttl']) required('posture mint', v[flag], `--${flag}`);
      checkSpiffeId('posture mint: --sub', v.sub!);
      checkTtl('posture mint', v.ttl!);
      if (!['low', 'medium', 'high'].includes(v.trust!)) fail(`posture mint: --trust must be low, medium or high, got ${JSON.stringify(v.trust)}`);
      const { mintPosture, readPrivateKey } = await import('./mint.ts');
      process.stdout.write(`${await mintPosture({ key: readPrivateKey(v.key!), iss: v.iss!, sub: v.sub!, trust: v.trust!, ttl: v.ttl!, kid: v.kid })}\n`);
      return;
    }
    case 'policy': {
      const [sub, ...args] = rest;
      if (sub === 'test') {
        let parsed;
        try {
          parsed = parseArgs({ args, options: { policy: { type: 'string' } }, allowPositionals: true, strict: true });
        } catch (error) {
          throw new UsageError(`policy test: ${(error as Error).message}`, 'policy test');
        }
        const policy = required('policy test', parsed.values.policy, '--policy FILE');
        if (parsed.positionals.length !== 1) throw new UsageError('policy test takes one CASES.yaml', 'policy test');
        const { policyTest } = await import('./policy-test.ts');
        const run = policyTest(policy, parsed.positionals[0]!);
        (run.code === 0 ? process.stdout : process.stderr).write(run.output);
        process.exitCode = run.code;
        return;
      }
      if (sub === 'explain') {
        const v = flags('policy explain', args, Object.fromEntries(['policy', 'subject', 'action', 'resource', 'sensitivity', 'grant-ttl', 'posture', 'intent'].map((k) => [k, { type: 'string' as const }]))) as Record<string, string | undefined>;
        for (const flag of ['policy', 'subject', 'action', 'resource']) required('policy explain', v[flag], `--${flag}`);
        checkSpiffeId('policy explain: --subject', v.subject!);
        const sensitivity = v.sensitivity ?? 'low';
        if (!['low', 'medium', 'high', 'critical'].includes(sensitivity)) throw new UsageError(`policy explain: --sensitivity must be low, medium, high or critical, got ${JSON.stringify(sensitivity)}`, 'policy explain');
        if (v.posture !== undefined && !['low', 'medium', 'high'].includes(v.posture)) throw new UsageError(`policy explain: --posture must be low, medium or high, got ${JSON.stringify(v.posture)}`, 'policy explain');
        const grantTtlMs = v['grant-ttl'] === undefined ? undefined : parseDuration(v['grant-ttl']);
        if (v['grant-ttl'] !== undefined && (grantTtlMs === undefined || grantTtlMs <= 0)) throw new UsageError(`policy explain: --grant-ttl: expected a duration like "10m", got ${JSON.stringify(v['grant-ttl'])}`, 'policy explain');
        const { loadPolicy } = await import('../config/load-policy.ts');
        const { ConfigError } = await import('../config/load.ts');
        const { policyExplain } = await import('./policy-explain.ts');
        const { DEFAULT_RULES } = await import('./policy-test.ts');
        let pdp;
        try {
          pdp = loadPolicy(v.policy!);
        } catch (error) {
          if (error instanceof ConfigError) fail(error.message, 1);
          throw error;
        }
        const c = {
          subject: v.subject!,
          action: v.action!,
          resource: v.resource!,
          sensitivity: sensitivity as 'low' | 'medium' | 'high' | 'critical',
          grant: grantTtlMs === undefined ? undefined : { ttlMs: grantTtlMs },
          posture: v.posture as 'low' | 'medium' | 'high' | undefined,
          intent: v.intent,
        };
        // Exit 0 whatever the decision: explaining a deny is the command working.
        process.stdout.write(policyExplain(pdp, c, DEFAULT_RULES, v.sensitivity === undefined).output);
        return;
      }
      throw new UsageError(sub === undefined ? 'policy: expected a subcommand: test or explain' : `policy: unknown subcommand "${sub}"`, sub === undefined ? undefined : 'policy test');
    }
    case 'revoke': {
      const v = flags('revoke', rest, { config: { type: 'string', short: 'c' }, jti: { type: 'string' }, sub: { type: 'string' }, 'posture-sub': { type: 'string' }, reason: { type: 'string' } });
      const file = required('revoke', v.config, '--config FILE');
      const named = [v.jti, v.sub, v['posture-sub']].filter((x) => x !== undefined).length;
      if (named !== 1) throw new UsageError('revoke: expected exactly one of --jti ID, --sub SPIFFE_ID, --posture-sub SPIFFE_ID', 'revoke');
      const { revoke } = await import('./revoke.ts');
      const result = await revoke(file, { jti: v.jti, sub: v.sub, postureSub: v['posture-sub'], reason: v.reason });
      process.stdout.write(result.stdout);
      process.stderr.write(result.stderr);
      process.exitCode = result.code;
      return;
    }
    case '--version':
    case '-v':
    case 'version':
      process.stdout.write(`portcullis ${VERSION}\n`);
      return;
    case undefined:
      // No command is a missing argument: usage on stderr, exit 2 (`--help` prints it on stdout, exit 0).
      fail(USAGE);
      break;
    default:
      fail(`unknown command "${command}"\n${USAGE}`);
  }
}

/** A usage error shows the command's synopsis and where the rest is, not the whole help. */
function shortUsage(command: string | undefined): string {
  const synopsis = usageOf(command).split('\n')[0]!;
  return `${synopsis}\n(portcullis ${command ?? 'COMMAND'} --help for more)`;
}

/** node:util parseArgs' own errors (unknown option, stray argument) are usage errors too. */
function isParseArgsError(error: unknown): boolean {
  return typeof (error as { code?: unknown })?.code === 'string' && (error as { code: string }).code.startsWith('ERR_PARSE_ARGS_');
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof UsageError) fail(`${error.message}\n${shortUsage(error.command)}`, 2);
  if (isParseArgsError(error)) fail(`portcullis: ${(error as Error).message}\n${shortUsage(undefined)}`, 2);
  fail(`portcullis: ${(error as Error).message}`, 1);
});
