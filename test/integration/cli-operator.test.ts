// An operator's basics (issue 10, item 5): --version, COMMAND --help that never runs the command,
// --log-level, exit codes (0 ok, 1 failure, 2 usage), check --offline and --format json, the
// grant-floor warnings, and the start log line with ISO time and string levels.
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configYaml, createPki, DEFAULT_ROUTES, type Pki } from '../support/harness.ts';
import { MAIN, startChildProxy } from '../support/child-proxy.ts';
import { runPortcullis } from '../support/run-command.ts';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const portcullis = (args: string[], env: Record<string, string> = {}) => runPortcullis(args, { env: { ...process.env, ...env }, timeout: 15_000 });

describe('portcullis --version and COMMAND --help', () => {
  it('--version prints the package version and exits 0', async () => {
    expect(await portcullis(['--version'])).toMatchObject({ code: 0, stdout: `portcullis ${VERSION}\n` });
  });

  it('every command and subcommand prints its own usage on --help and -h, exits 0, and never runs', async () => {
    const commands: [string[], string][] = [
      // Arguments that would make each command do something (or fail) if it ran.
      [['run', '--config', '/nonexistent/portcullis.yaml'], 'usage: portcullis run'],
      [['check', '--config', '/nonexistent/portcullis.yaml'], 'usage: portcullis check'],
      [['demo'], 'usage: portcullis demo'],
      [['grant', 'mint', '--key', '/nonexistent.pem'], 'usage: portcullis grant mint'],
      [['posture', 'mint'], 'usage: portcullis posture mint'],
      [['svid', 'inspect', '/nonexistent.pem'], 'usage: portcullis svid inspect'],
      [['dev-pki', '--out', '/nonexistent/never-written', '--trust-domain', 'example.org', '--workload', 'a'], 'usage: portcullis dev-pki'],
      [['policy', 'test', '--policy', '/nonexistent.yaml', '/nonexistent-cases.yaml'], 'usage: portcullis policy test'],
      [['policy', 'explain', '--policy', '/nonexistent.yaml', '--subject', 'x'], 'usage: portcullis policy explain'],
      [['policy'], 'usage: portcullis policy test'],
    ];
    for (const [args, usage] of commands) {
      for (const flag of ['--help', '-h']) {
        const result = await portcullis([...args, flag]);
        expect([args.join(' '), flag, result.code, result.stderr], result.stdout).toEqual([args.join(' '), flag, 0, '']);
        expect(result.stdout.startsWith(usage), `${args.join(' ')} ${flag}`).toBe(true);
      }
    }
    // The demo would print its curl lines and keep running; with --help it exits at once.
    const demo = await portcullis(['demo', '--help']);
    expect(demo.stdout).not.toContain('Portcullis demo is running');
    expect((await portcullis(['--help'])).stdout).toContain('portcullis dev-pki');
  });
});

describe('exit codes: 0 ok, 1 failure, 2 usage', () => {
  let pki: Pki;
  beforeAll(async () => {
    pki = await createPki();
  });
  afterAll(() => pki.cleanup());

  it('usage problems exit 2 with a message on stderr: unknown command or flag, missing argument, bad value', async () => {
    const good = pki.write('good.yaml', configYaml(pki, 'http://127.0.0.1:1', DEFAULT_ROUTES));
    const cases: [string[], string][] = [
      [[], 'usage: portcullis COMMAND'],
      [['frobnicate'], 'unknown command "frobnicate"'],
      [['run'], '--config FILE is required'],
      [['run', '--config', good, '--bogus'], "Unknown option '--bogus'"],
      [['run', '--config', good, '--log-level', 'loud'], 'run: --log-level: unknown log level "loud": expected one of trace, debug, info, warn, error, fatal, silent'],
      [['demo', '--log-level', 'verbose'], 'demo: --log-level: unknown log level "verbose"'],
      [['demo', 'extra'], 'demo: Unexpected argument'],
      [['check', '--config', good, '--format', 'xml'], 'check: --format must be text or json, got "xml"'],
      [['check', '--config', good, 'stray'], 'check: Unexpected argument'],
      [['grant'], 'grant: expected a subcommand: mint'],
      [['grant', 'mint', '--key', 'k', '--bogus', 'x'], "Unknown option '--bogus'"],
      [['posture', 'burn'], 'posture: unknown subcommand "burn"'],
      [['grant', 'mint', '--key', 'k', '--iss', 'x', '--sub', 'spiffe://example.org/a', '--aud', 'y', '--scope', 'a', '--ttl', 'soon'], 'grant mint: --ttl: expected a duration like "5m", got "soon"'],
      [['posture', 'mint', '--key', 'k', '--iss', 'x', '--sub', 'spiffe://example.org/a', '--trust', 'high', '--ttl', '0s'], 'posture mint: --ttl: expected a duration'],
      [['svid', 'inspect'], 'svid inspect takes one FILE.pem'],
      [['svid', 'inspect', 'a.pem', '--bogus'], "Unknown option '--bogus'"],
      [['dev-pki', '--trust-domain', 'example.org', '--workload', 'a'], 'dev-pki: --out DIR is required'],
      [['dev-pki', '--out', join(pki.dir, 'never'), '--trust-domain', 'example.org'], 'dev-pki: --workload NAME is required'],
      [['dev-pki', '--out', join(pki.dir, 'never'), '--trust-domain', 'Example.ORG', '--workload', 'a'], 'dev-pki: --trust-domain "Example.ORG"'],
      [['dev-pki', '--out', join(pki.dir, 'never'), '--trust-domain', 'example.org', '--workload', '../../etc'], 'dev-pki: --workload "../../etc"'],
    ];
    for (const [args, message] of cases) {
      const result = await portcullis(args);
      expect([args.join(' '), result.code], result.stderr).toEqual([args.join(' '), 2]);
      expect(result.stderr, args.join(' ')).toContain(message);
    }
    const badEnv = await portcullis(['run', '--config', good], { PORTCULLIS_LOG_LEVEL: 'chatty' });
    expect([badEnv.code, badEnv.stderr]).toEqual([2, expect.stringContaining('run: PORTCULLIS_LOG_LEVEL: unknown log level "chatty"')]);
  });

  it('failures exit 1: a bad config for run and check, an unreadable key for grant mint, a failed start', async () => {
    const bad = pki.write('bad.yaml', configYaml(pki, 'http://127.0.0.1:1').replace('port: 0 }\nidentity', 'port: 0 }\ncache: { allowTtl: soon }\nidentity'));
    for (const command of ['run', 'check']) {
      const result = await portcullis([command, '--config', bad]);
      expect([command, result.code, result.stderr]).toEqual([command, 1, expect.stringContaining('cache.allowTtl: expected a duration like "30s", got "soon"')]);
    }
    const mint = await portcullis(['grant', 'mint', '--key', join(pki.dir, 'nope.pem'), '--iss', 'x', '--sub', 'spiffe://example.org/a', '--aud', 'y', '--scope', 'a', '--ttl', '5m']);
    expect([mint.code, mint.stderr]).toEqual([1, expect.stringContaining('not a readable PEM private key')]);
    // Port 1 on loopback needs root or is refused; either way the start fails.
    const noListen = pki.write('port.yaml', configYaml(pki, 'http://127.0.0.1:1', DEFAULT_ROUTES).replace('listen: { address: 127.0.0.1, port: 0 }', 'listen: { address: 192.0.2.1, port: 0 }'));
    const start = await portcullis(['run', '--config', noListen]);
    expect(start.code).toBe(1);
  });
});

describe('portcullis check --offline, --format json, and the grant-floor warnings', () => {
  let pki: Pki;
  beforeAll(async () => {
    pki = await createPki();
  });
  afterAll(() => pki.cleanup());

  it('--offline checks schema, cross-field rules and the policy without the SVID and JWKS files', async () => {
    const yaml = configYaml(pki, 'http://127.0.0.1:1', DEFAULT_ROUTES).replace(/svid\.pem|svid_key\.pem|bundle\.pem/g, (f) => `elsewhere/${f}`) + 'grants: { issuers: [{ issuer: https://jit.example.org, jwksFile: elsewhere/jwks.json }] }\n';
    const file = pki.write('configmap.yaml', yaml);
    const online = await portcullis(['check', '--config', file]);
    expect(online.code).toBe(1);
    expect(online.stderr).toContain('identity.certFile');
    expect(online.stderr).toContain('grants.issuers[0].jwksFile');
    expect(await portcullis(['check', '--config', file, '--offline'])).toMatchObject({ code: 0, stdout: `${file}: ok\n` });
    // The policy file is config: offline still reads it, and still applies every schema rule.
    rmSync(join(pki.dir, 'policy.yaml'));
    try {
      const noPolicy = await portcullis(['check', '--config', file, '--offline']);
      expect([noPolicy.code, noPolicy.stderr]).toEqual([1, expect.stringMatching(/pdp\.policyFile: .*policy\.yaml: cannot read: ENOENT/)]);
    } finally {
      pki.write('policy.yaml', 'rules: []\n');
    }
    const crossField = pki.write('cross.yaml', yaml.replace('admin: { address: 127.0.0.1, port: 0 }', 'admin: { address: 0.0.0.0, port: 0 }'));
    expect((await portcullis(['check', '--config', crossField, '--offline'])).stderr).toContain('admin.address: "0.0.0.0" is not loopback');
  });

  it('--format json gives file, ok, problems with file/line/key/message, and warnings', async () => {
    const yaml = configYaml(pki, 'http://127.0.0.1:1', DEFAULT_ROUTES).replace('port: 0 }\nidentity', 'port: 0 }\ncache: { allowTtl: soon }\nidentity');
    const file = pki.write('json.yaml', yaml);
    const bad = await portcullis(['check', '--config', file, '--format', 'json']);
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout)).toEqual({
      file,
      ok: false,
      problems: [{ file, line: yaml.split('\n').findIndex((l) => l.startsWith('cache:')) + 1, key: 'cache.allowTtl', message: 'expected a duration like "30s", got "soon"' }],
      warnings: [],
    });
    const good = await portcullis(['check', '--config', pki.write('json-good.yaml', configYaml(pki, 'http://127.0.0.1:1', DEFAULT_ROUTES)), '--format', 'json']);
    expect([good.code, JSON.parse(good.stdout).ok, JSON.parse(good.stdout).problems]).toEqual([0, true, []]);
  });

  const ROUTES = `routes:
  - name: refund
    match: { methods: [POST], path: "/orders/{id}/refund" }
    action: orders.refund
    sensitivity: high
  - name: lookup
    match: { methods: [GET], path: "/orders/{id}" }
    action: orders.read
    sensitivity: medium
  - name: ping
    match: { path: /ping }
    action: ping
    sensitivity: low
  - name: health
    match: { path: /healthz }
    privileged: false
    sensitivity: low
`;

  it('warns, exit 0, for each privileged low/medium route whose embedded tier demands no grant', async () => {
    pki.write('tiers.yaml', 'tiers:\n  low: { grant: true }\n  high: { grant: true, posture: high }\nrules: []\n');
    const yaml = configYaml(pki, 'http://127.0.0.1:1', ROUTES).replace('policyFile: policy.yaml', 'policyFile: tiers.yaml');
    const file = pki.write('warn.yaml', yaml);
    const result = await portcullis(['check', '--config', file]);
    const line = yaml.split('\n').findIndex((l) => l.includes('sensitivity: medium')) + 1;
    expect(result).toEqual({
      code: 0,
      stderr: '',
      stdout: `warning: ${file}:${line}: routes[1].sensitivity: privileged route "lookup" (sensitivity medium) demands no grant: the policy's tiers.medium.grant is not true, so any peer an allow rule names passes without one\n${file}: ok\n`,
    });
    const json = JSON.parse((await portcullis(['check', '--config', file, '--format', 'json'])).stdout);
    expect(json).toMatchObject({ ok: true, problems: [], warnings: [{ file, line, key: 'routes[1].sensitivity' }] });
    // The default route counts too, and a tier that demands a grant silences its routes.
    pki.write('tiers-all.yaml', 'tiers:\n  low: { grant: true }\n  medium: { grant: true }\nrules: []\n');
    const quiet = pki.write('quiet.yaml', yaml.replace('policyFile: tiers.yaml', 'policyFile: tiers-all.yaml'));
    expect(await portcullis(['check', '--config', quiet])).toEqual({ code: 0, stderr: '', stdout: `${quiet}: ok\n` });
    const fallback = pki.write('fallback.yaml', `${yaml}defaultRoute: { action: anything, sensitivity: medium }\n`);
    expect((await portcullis(['check', '--config', fallback])).stdout).toContain('defaultRoute.sensitivity: privileged route "default" (sensitivity medium) demands no grant');
  });

  it('with a remote PDP, warns for every privileged low/medium route: only the remote PDP decides', async () => {
    const yaml = configYaml(pki, 'http://127.0.0.1:1', ROUTES).replace('pdp: { policyFile: policy.yaml }', 'pdp: { kind: authzen, url: "http://127.0.0.1:1/access/v1/evaluation" }');
    const result = await portcullis(['check', '--config', pki.write('remote.yaml', yaml), '--offline']);
    expect(result.code).toBe(0);
    const warnings = result.stdout.split('\n').filter((l) => l.startsWith('warning: '));
    expect(warnings.map((w) => /routes\[(\d)\]/.exec(w)?.[1])).toEqual(['1', '2']);
    expect(warnings[0]).toContain('privileged route "lookup" (sensitivity medium) has no grant floor: only the remote PDP decides');
  });
});

describe('portcullis run: the start line and the log format', () => {
  let pki: Pki;
  beforeAll(async () => {
    pki = await createPki();
  });
  afterAll(() => pki.cleanup());

  it('logs one start line with version, config, addresses, SPIFFE ID, SVID expiry, PDP, routes and upstream; ISO time, string level', async () => {
    const file = pki.write('run.yaml', configYaml(pki, 'http://127.0.0.1:1', DEFAULT_ROUTES));
    const proxy = await startChildProxy(file);
    try {
      const line = proxy.stderr().split('\n').find((l) => l.includes('portcullis is serving'))!;
      const entry = JSON.parse(line) as Record<string, unknown>;
      expect(entry).toMatchObject({
        level: 'info',
        version: VERSION,
        config: file,
        spiffe_id: 'spiffe://example.org/ns/prod/sa/orders-api',
        svid_not_after: pki.server.cert.notAfter.toISOString(),
        listen: `127.0.0.1:${proxy.port}`,
        admin: `127.0.0.1:${proxy.adminPort}`,
        pdp: 'embedded',
        routes: 4,
        upstream: 'http://127.0.0.1:1',
        msg: 'portcullis is serving',
      });
      // RFC 3339, as the audit log writes it.
      expect(entry.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(Math.abs(Date.parse(entry.time as string) - Date.now())).toBeLessThan(60_000);
    } finally {
      expect(await proxy.stop()).toBe(0);
    }
  });

  it('logs each grant-floor warning of check at warn level when it starts', async () => {
    pki.write('warn-policy.yaml', 'rules: []\n');
    const routes = 'routes:\n  - name: lookup\n    match: { path: /orders }\n    action: orders.read\n    sensitivity: low\n';
    const file = pki.write('warn-run.yaml', configYaml(pki, 'http://127.0.0.1:1', routes).replace('policyFile: policy.yaml', 'policyFile: warn-policy.yaml'));
    const proxy = await startChildProxy(file);
    try {
      await new Promise((resolve) => setTimeout(resolve, 200));
      const warning = proxy.stderr().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e.level === 'warn');
      expect(warning).toMatchObject({ config: file, config_key: 'routes[0].sensitivity', msg: expect.stringContaining('privileged route "lookup" (sensitivity low) demands no grant') });
    } finally {
      expect(await proxy.stop()).toBe(0);
    }
  });

  it('--log-level warn silences the info start line (the proxy is up all the same)', async () => {
    const { createServer } = await import('node:net');
    const hold = createServer();
    await new Promise<void>((resolve) => hold.listen(0, '127.0.0.1', resolve));
    const adminPort = (hold.address() as { port: number }).port;
    await new Promise<void>((resolve) => hold.close(() => resolve()));
    const file = pki.write('quiet-run.yaml', configYaml(pki, 'http://127.0.0.1:1', DEFAULT_ROUTES).replace('admin: { address: 127.0.0.1, port: 0 }', `admin: { address: 127.0.0.1, port: ${adminPort} }`));
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [MAIN, 'run', '--config', file, '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      let healthy = false;
      for (let i = 0; i < 100 && !healthy; i++) {
        healthy = await fetch(`http://127.0.0.1:${adminPort}/healthz`).then((r) => r.ok, () => false);
        if (!healthy) await new Promise((resolve) => setTimeout(resolve, 150));
      }
      expect(healthy, stderr).toBe(true);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(stderr).not.toContain('portcullis is serving');
  });
});
