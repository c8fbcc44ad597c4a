import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, formatProblem, loadConfig, type ConfigProblem } from '../../../src/config/load.ts';
import { isLoopback, type Config } from '../../../src/config/schema.ts';

const root = mkdtempSync(join(tmpdir(), 'portcullis-config-test-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let counter = 0;
/** Writes `text` to a fresh directory and returns the file path. */
function write(text: string, name = 'portcullis.yaml'): string {
  const dir = join(root, `c${++counter}`);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

const IDENTITY = `identity:
  certFile: svid.pem
  keyFile: svid_key.pem
  bundleFile: bundle.pem
  trustDomains: [example.org]
  allow: ["spiffe://example.org/ns/prod/**"]
`;
const UPSTREAM = `upstream: { url: "http://127.0.0.1:8080", timeout: 2s }
`;
const PDP = `pdp: { policyFile: policy.yaml }
`;
const MINIMAL = IDENTITY + UPSTREAM + PDP;

function load(text: string, name?: string): Config {
  return loadConfig(write(text, name));
}

/** The problems loadConfig throws for `text`; fails if it loads. */
function problems(text: string, name?: string): { file: string; list: readonly ConfigProblem[] } {
  const file = write(text, name);
  try {
    loadConfig(file);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    const list = (error as ConfigError).problems;
    expect(list.length).toBeGreaterThan(0);
    for (const p of list) expect(p.file).toBe(file);
    return { file, list };
  }
  throw new Error(`expected a ConfigError for:\n${text}`);
}

function problemAt(text: string, key: string): ConfigProblem {
  const { list } = problems(text);
  const found = list.find((p) => p.key === key);
  if (!found) throw new Error(`no problem at ${key}; got ${JSON.stringify(list)}`);
  return found;
}

describe('loadConfig: a minimal valid config', () => {
  it('loads and fills documented defaults', () => {
    const file = write(MINIMAL);
    const config = loadConfig(file);
    expect(config.listen).toEqual({ address: '0.0.0.0', port: 8443, protocols: ['h2', 'http/1.1'] });
    expect(config.identity.source).toBe('files');
    expect(config.identity.trustDomains).toEqual(['example.org']);
    expect(config.upstream).toMatchObject({ url: 'http://127.0.0.1:8080', timeout: 2_000, connectTimeout: 5_000 });
    expect(config.routes).toEqual([]);
    expect(config.defaultRoute).toBe('deny');
    expect(config.routing).toEqual({ allowPathParams: false, upgrades: ['websocket'] });
    expect(config.accessLog).toEqual({ file: 'off' });
    expect(config.pdp).toMatchObject({ kind: 'embedded', timeout: 250, onError: 'deny' });
    expect(config.cache).toEqual({ maxEntries: 100_000, allowTtl: 30_000, denyTtl: 2_000 });
    expect(config.grants).toMatchObject({ header: 'x-jit-grant', issuers: [], audience: 'self', clockSkew: 2_000 });
    expect(config.posture).toMatchObject({ header: 'x-device-posture', maxAge: 300_000 });
    expect(config.intent).toEqual({ header: 'x-intent' });
    expect(config.admin).toEqual({ address: '127.0.0.1', port: 9901, allowNonLoopback: false });
    expect(config.audit).toEqual({ file: '-' });
  });

  it('loads the full example from the SPEC', () => {
    const config = load(`listen: { address: 0.0.0.0, port: 8443 }
identity:
  source: files
  certFile: svid.pem
  keyFile: svid_key.pem
  bundleFile: bundle.pem
  trustDomains: [example.org, partner.org]
  bundles: { partner.org: partner-bundle.pem }
  allow: ["spiffe://example.org/**"]
  workloadApiSocket: unix:///run/spire/agent.sock
upstream:
  url: http://127.0.0.1:8080
  timeout: 30s
routes:
  - name: health
    match: { methods: [GET], path: /healthz }
    privileged: false
  - name: refund
    match: { methods: [POST], path: "/orders/{id}/refund" }
    action: orders.refund
    resource: "order:{id}"
    sensitivity: high
    cacheTtl: 10s
defaultRoute: deny
routing: { allowPathParams: false }
pdp:
  kind: embedded
  policyFile: policy.yaml
  timeout: 250ms
  onError: deny
cache: { maxEntries: 100000, allowTtl: 30s, denyTtl: 2s }
grants:
  header: x-jit-grant
  issuers:
    - issuer: https://jit.example.org
      jwksFile: jit-jwks.json
  audience: self
  clockSkew: 2s
posture:
  header: x-device-posture
  issuers: [{ issuer: https://posture.example.org, jwksFile: posture-jwks.json }]
  maxAge: 5m
intent: { header: x-intent }
admin: { address: 127.0.0.1, port: 9901 }
audit: { file: "-" }
`);
    expect(config.routes.map((r) => r.name)).toEqual(['health', 'refund']);
    expect(config.routes[1]).toMatchObject({ privileged: true, action: 'orders.refund', resource: 'order:{id}', sensitivity: 'high', cacheTtl: 10_000 });
    expect(config.routes[1]?.match).toEqual({ methods: ['POST'], path: '/orders/{id}/refund' });
    expect(config.posture.maxAge).toBe(300_000);
    expect(config.identity.workloadApiSocket).toBe('unix:///run/spire/agent.sock');
  });

  it('accepts JSON', () => {
    const config = load(
      JSON.stringify({
        identity: { certFile: 'svid.pem', keyFile: 'k.pem', bundleFile: 'b.pem', trustDomains: ['example.org'], allow: ['spiffe://example.org/**'] },
        upstream: { url: 'unix:/run/app.sock' },
        pdp: { kind: 'opa', url: 'http://127.0.0.1:8181/v1/data/portcullis/allow' },
        cache: { allowTtl: '10s' },
      }),
      'portcullis.json',
    );
    expect(config.upstream.url).toBe('unix:/run/app.sock');
    expect(config.pdp.kind).toBe('opa');
    expect(config.cache.allowTtl).toBe(10_000);
  });

  it('accepts a workload-api identity without files', () => {
    const config = load(`identity:
  source: workload-api
  workloadApiSocket: unix:///run/spire/agent.sock
  trustDomains: [example.org]
  allow: ["spiffe://example.org/**"]
${UPSTREAM}${PDP}`);
    expect(config.identity.certFile).toBeUndefined();
    expect(config.identity.workloadApiSocket).toBe('unix:///run/spire/agent.sock');
  });

  it('requires a unix socket for the Workload API', () => {
    const missing = problemAt(`identity:\n  source: workload-api\n  trustDomains: [example.org]\n  allow: ["spiffe://example.org/**"]\n${UPSTREAM}${PDP}`, 'identity.workloadApiSocket');
    expect(missing.message).toBe('required when identity.source is "workload-api"');
    const tcp = problemAt(`identity:\n  source: workload-api\n  workloadApiSocket: "tcp://127.0.0.1:1"\n  trustDomains: [example.org]\n  allow: ["spiffe://example.org/**"]\n${UPSTREAM}${PDP}`, 'identity.workloadApiSocket');
    expect(tcp.message).toMatch(/expected "unix:\/\/\/path\/to\/agent.sock"/);
  });

  it('requires the identity files when identity.source is left to its default', () => {
    const p = problemAt(`identity:\n  trustDomains: [example.org]\n  allow: ["spiffe://example.org/**"]\n${UPSTREAM}${PDP}`, 'identity.certFile');
    expect(p.message).toBe('required when identity.source is "files"');
  });

  it('accepts a defaultRoute object', () => {
    const config = load(`${MINIMAL}defaultRoute: { action: service.any, resource: service, sensitivity: low }\n`);
    expect(config.defaultRoute).toEqual({ privileged: true, action: 'service.any', resource: 'service', sensitivity: 'low' });
  });

  it.each(['127.0.0.1', '127.1.2.3', 'localhost', '::1'])('accepts loopback admin address %s', (address) => {
    expect(load(`${MINIMAL}admin: { address: "${address}" }\n`).admin.address).toBe(address);
  });

  it('accepts a non-loopback admin address with allowNonLoopback: true', () => {
    expect(load(`${MINIMAL}admin: { address: 0.0.0.0, allowNonLoopback: true }\n`).admin).toMatchObject({ address: '0.0.0.0', allowNonLoopback: true });
  });
});

describe('loadConfig: file paths', () => {
  it('resolves relative paths against the config file directory, keeps absolute ones', () => {
    const file = write(`identity:
  certFile: svid.pem
  keyFile: keys/svid_key.pem
  bundleFile: /etc/portcullis/bundle.pem
  trustDomains: [example.org, partner.org]
  bundles: { partner.org: ../partner.pem }
  allow: ["spiffe://example.org/**"]
${UPSTREAM}pdp: { policyFile: ./policy.yaml }
grants: { issuers: [{ issuer: "https://jit", jwksFile: jwks.json }, { issuer: "https://jit2", publicKeyFile: pub.pem }, { issuer: "https://jit3", jwksUrl: "https://jit3/jwks" }] }
posture: { issuers: [{ issuer: "https://posture", jwksFile: posture/jwks.json }] }
audit: { file: logs/audit.jsonl }
`);
    const dir = join(file, '..');
    const config = loadConfig(file);
    expect(config.identity.certFile).toBe(join(dir, 'svid.pem'));
    expect(config.identity.keyFile).toBe(join(dir, 'keys/svid_key.pem'));
    expect(config.identity.bundleFile).toBe('/etc/portcullis/bundle.pem');
    expect(config.identity.bundles).toEqual({ 'partner.org': join(dir, '..', 'partner.pem') });
    expect(config.pdp.policyFile).toBe(join(dir, 'policy.yaml'));
    expect(config.grants.issuers[0]?.jwksFile).toBe(join(dir, 'jwks.json'));
    expect(config.grants.issuers[1]?.publicKeyFile).toBe(join(dir, 'pub.pem'));
    expect(config.grants.issuers[2]?.jwksUrl).toBe('https://jit3/jwks');
    expect(config.posture.issuers[0]?.jwksFile).toBe(join(dir, 'posture/jwks.json'));
    expect(config.audit.file).toBe(join(dir, 'logs/audit.jsonl'));
  });

  it('keeps audit "-" as stdout', () => {
    expect(load(MINIMAL).audit.file).toBe('-');
  });

  it('a missing file is a problem naming the file', () => {
    const file = join(root, 'does-not-exist.yaml');
    try {
      loadConfig(file);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).problems).toEqual([{ file, key: '', message: 'cannot read: ENOENT' }]);
    }
  });
});

describe('loadConfig: syntax errors', () => {
  it('invalid YAML gives a problem with a line number', () => {
    const { list } = problems(`${MINIMAL}cache:\n  allowTtl: [30s\n`);
    expect(list[0]?.key).toBe('');
    // The unclosed "[" opens on line 10; the parser notices at the end of the file (line 11).
    expect([10, 11]).toContain(list[0]?.line);
    expect(list[0]?.message).toMatch(/\S/);
  });

  it('a duplicate key is a YAML error with its line', () => {
    const { list } = problems(`${MINIMAL}cache: { allowTtl: 10s }\ncache: { denyTtl: 1s }\n`);
    expect(list[0]?.line).toBe(10);
    expect(list[0]?.message).toMatch(/unique|duplicate/i);
  });

  it('invalid JSON gives a problem with a line number', () => {
    const { list } = problems('{\n  "identity": {\n    "certFile": "a",,\n  }\n}\n', 'portcullis.json');
    expect(list[0]?.line).toBe(3);
  });

  it.each(['', '# only a comment\n', '- a\n- b\n', 'just a string\n', '42\n'])('a file that is not a mapping (%j) is refused', (text) => {
    const { list } = problems(text);
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ key: '', message: 'expected a mapping of config keys at the top level' });
  });
});

describe('loadConfig: schema problems name the key path and line', () => {
  it('a bad duration names the key and shows the value', () => {
    const text = `${MINIMAL}cache: { allowTtl: soon }\n`;
    const p = problemAt(text, 'cache.allowTtl');
    expect(p.message).toBe('expected a duration like "30s", got "soon"');
    expect(p.line).toBe(9);
  });

  it('a PDP timeout beyond 10 s (past the decision-duration buckets) names pdp.timeout', () => {
    const p = problemAt(`${MINIMAL}pdp: { policyFile: p.yaml, timeout: 30s }\n`.replace(PDP, ''), 'pdp.timeout');
    expect(p.message).toBe('expected a PDP timeout between 1ms and 10s');
  });

  it('a number where a duration belongs is refused with the same wording', () => {
    const p = problemAt(`${MINIMAL}pdp: { policyFile: p.yaml, timeout: 250 }\n`.replace(PDP, ''), 'pdp.timeout');
    expect(p.message).toBe('expected a duration like "30s", got 250');
  });

  it('a bad route cacheTtl names the route index', () => {
    const p = problemAt(`${MINIMAL}routes:\n  - name: r\n    match: { path: /r }\n    action: a\n    sensitivity: low\n    cacheTtl: 10\n`, 'routes[0].cacheTtl');
    expect(p.message).toMatch(/expected a duration like "30s"/);
    expect(p.line).toBe(14);
  });

  it('an unknown top-level key is an error naming the key', () => {
    const p = problemAt(`${MINIMAL}bogus: 1\n`, 'bogus');
    expect(p.message).toMatch(/unknown key/);
    expect(p.line).toBe(9);
  });

  it('an unknown nested key is an error naming the full path', () => {
    const p = problemAt(`listen: { address: 127.0.0.1, bogus: true }\n${MINIMAL}`, 'listen.bogus');
    expect(p.message).toMatch(/unknown key/);
    expect(p.line).toBe(1);
  });

  it('an unknown key inside a route names the route index', () => {
    const p = problemAt(`${MINIMAL}routes:\n  - name: r\n    match: { path: /r, method: GET }\n    privileged: false\n`, 'routes[0].match.method');
    expect(p.message).toMatch(/unknown key/);
    expect(p.line).toBe(11);
  });

  it('a misspelt key in identity is caught (not silently ignored)', () => {
    const p = problemAt(MINIMAL.replace('allow:', 'allow:').replace('certFile', 'certfile'), 'identity.certfile');
    expect(p.message).toMatch(/unknown key/);
  });

  it('several problems are all reported, each formatted as file:line: key: message', () => {
    const { file, list } = problems(`${MINIMAL}cache: { allowTtl: soon, denyTtl: later }\nlisten: { port: "80" }\n`);
    const keys = list.map((p) => p.key).sort();
    expect(keys).toEqual(['cache.allowTtl', 'cache.denyTtl', 'listen.port']);
    const deny = list.find((p) => p.key === 'cache.denyTtl')!;
    expect(formatProblem(deny)).toBe(`${file}:9: cache.denyTtl: expected a duration like "30s", got "later"`);
    expect(list.find((p) => p.key === 'listen.port')?.message).toBe('expected a port number, got "80"');
  });

  it('the ConfigError message lists every problem on its own line', () => {
    const file = write(`${MINIMAL}cache: { allowTtl: soon, denyTtl: later }\n`);
    expect(() => loadConfig(file)).toThrowError(`${file}:9: cache.allowTtl: expected a duration like "30s", got "soon"\n${file}:9: cache.denyTtl: expected a duration like "30s", got "later"`);
  });

  it('a missing required section says "required"', () => {
    const p = problemAt(IDENTITY + PDP, 'upstream');
    expect(p.message).toBe('required');
  });

  it('a missing required key says "required" with the line of its parent mapping', () => {
    const p = problemAt(MINIMAL.replace('  trustDomains: [example.org]\n', ''), 'identity.trustDomains');
    expect(p.message).toBe('required');
    expect(p.line).toBe(2);
  });

  it('a port out of range is refused', () => {
    problemAt(`${MINIMAL}listen: { port: 70000 }\n`, 'listen.port');
  });

  it('a trust domain of 256 bytes is refused, one of 255 accepted', () => {
    const td255 = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}`;
    expect(load(MINIMAL.replace('trustDomains: [example.org]', `trustDomains: [example.org, ${td255}]`)).identity.trustDomains).toContain(td255);
    const p = problemAt(MINIMAL.replace('trustDomains: [example.org]', `trustDomains: [example.org, ${td255}x]`), 'identity.trustDomains[1]');
    expect(p.message).toMatch(/longer than 255 bytes/);
  });

  it('an invalid trust domain says why', () => {
    const p = problemAt(MINIMAL.replace('trustDomains: [example.org]', 'trustDomains: [Example.org]'), 'identity.trustDomains[0]');
    expect(p.message).toMatch(/invalid trust domain "Example\.org".*lowercase/);
    expect(p.line).toBe(5);
  });

  it('an invalid allow pattern says why', () => {
    const p = problemAt(MINIMAL.replace('"spiffe://example.org/ns/prod/**"', '"spiffe://example.org/ns//x"'), 'identity.allow[0]');
    expect(p.message).toMatch(/invalid SPIFFE ID pattern/);
  });

  it('a bad upstream url is refused', () => {
    problemAt(MINIMAL.replace('http://127.0.0.1:8080', 'ftp://x'), 'upstream.url');
    // https would promise TLS to the service, which the forwarder does not speak: refused, never sent in the clear.
    expect(problemAt(MINIMAL.replace('http://127.0.0.1:8080', 'https://orders.internal:8443'), 'upstream.url').message).toMatch(/TLS to the service is not supported/);
    problemAt(MINIMAL.replace('http://127.0.0.1:8080', 'http://127.0.0.1:8080/prefix'), 'upstream.url');
  });

  it('an unknown enum value is refused', () => {
    problemAt(`${MINIMAL.replace(PDP, '')}pdp: { kind: magic }\n`, 'pdp.kind');
    problemAt(`${MINIMAL}routes:\n  - name: r\n    match: { path: /r }\n    action: a\n    sensitivity: extreme\n`, 'routes[0].sensitivity');
  });

  it('pdp.onError other than deny is refused: never fail open', () => {
    const p = problemAt(`${MINIMAL.replace(PDP, '')}pdp: { policyFile: p.yaml, onError: allow }\n`, 'pdp.onError');
    expect(p.message).toMatch(/never fails open/);
  });
});

describe('loadConfig: cross-field rules', () => {
  it.each(['certFile', 'keyFile', 'bundleFile'])('identity.%s is required when source is files', (key) => {
    const p = problemAt(MINIMAL.replace(new RegExp(`  ${key}: .*\\n`), ''), `identity.${key}`);
    expect(p.message).toBe('required when identity.source is "files"');
  });

  it('a bundle for a trust domain not listed is refused', () => {
    const p = problemAt(MINIMAL.replace('  allow:', '  bundles: { other.org: other.pem }\n  allow:'), 'identity.bundles.other.org');
    expect(p.message).toMatch(/not listed in identity\.trustDomains/);
  });

  it('admin.address 0.0.0.0 is refused without allowNonLoopback: true', () => {
    const p = problemAt(`${MINIMAL}admin: { address: 0.0.0.0 }\n`, 'admin.address');
    expect(p.message).toMatch(/not loopback.*admin\.allowNonLoopback: true/);
    expect(p.line).toBe(9);
  });

  it('duplicate route names are refused at the second one', () => {
    const p = problemAt(`${MINIMAL}routes:\n  - name: r\n    match: { path: /a }\n    privileged: false\n  - name: r\n    match: { path: /b }\n    privileged: false\n`, 'routes[1].name');
    expect(p.message).toBe('duplicate route name "r"');
    expect(p.line).toBe(13);
  });

  it('a privileged route without an action is refused', () => {
    const p = problemAt(`${MINIMAL}routes:\n  - name: r\n    match: { path: /a }\n`, 'routes[0].action');
    expect(p.message).toBe('required for a privileged route');
  });

  it('a privileged route, or defaultRoute, without a sensitivity is refused, naming the route and its line (SPEC step 2)', () => {
    const routes = `${MINIMAL}routes:\n  - name: open\n    match: { path: /o }\n    privileged: false\n  - name: r\n    match: { path: /r }\n    action: a\n`;
    const { file, list } = problems(routes);
    expect(list.map(formatProblem)).toEqual([`${file}:13: routes[1].sensitivity: required for a privileged route`]);
    expect(problemAt(`${MINIMAL}defaultRoute: { action: a }\n`, 'defaultRoute.sensitivity').message).toBe('required for a privileged route');
    expect(load(`${MINIMAL}defaultRoute: { privileged: false }\n`).defaultRoute).toMatchObject({ privileged: false });
  });

  it('a privileged defaultRoute without an action is refused', () => {
    const p = problemAt(`${MINIMAL}defaultRoute: { sensitivity: low }\n`, 'defaultRoute.action');
    expect(p.message).toBe('required for a privileged route');
  });

  it('a resource referencing a capture not in the path is refused', () => {
    const p = problemAt(`${MINIMAL}routes:\n  - name: r\n    match: { path: "/orders/{oid}" }\n    action: a\n    sensitivity: low\n    resource: "order:{id}"\n`, 'routes[0].resource');
    expect(p.message).toBe('"{id}" is not captured by match.path');
  });

  it('a defaultRoute resource cannot reference a capture: it has no path', () => {
    const p = problemAt(`${MINIMAL}defaultRoute: { action: a, sensitivity: low, resource: "x:{id}" }\n`, 'defaultRoute.resource');
    expect(p.message).toMatch(/\{id\}/);
  });

  it.each([
    ['no leading slash', 'orders'],
    ['"**" not at the end', '/a/**/b'],
    ['capture not a whole segment', '/a/x{id}'],
    ['bad capture name', '/a/{1d}'],
  ])('a route path with %s is refused', (_label, path) => {
    problemAt(`${MINIMAL}routes:\n  - name: r\n    match: { path: "${path}" }\n    privileged: false\n`, 'routes[0].match.path');
  });

  it.each([
    ['a repeated "/"', '/a//b'],
    ['a "." segment', '/a/./b'],
    ['a ".." segment', '/a/../b'],
    ['an encoded unreserved character', '/%7Euser'],
    ['a lowercase escape', '/caf%c3%a9'],
    ['a query', '/a?x=1'],
  ])('a route path with %s (which no normalised request path can equal) is refused', (_label, path) => {
    const p = problemAt(`${MINIMAL}routes:\n  - name: r\n    match: { path: "${path}" }\n    privileged: false\n`, 'routes[0].match.path');
    expect(p.message).toMatch(/normal/);
  });

  it.each(['pdp.kind authzen needs url', 'pdp.kind opa needs url', 'pdp.kind ext-authz needs address'])('%s', (label) => {
    const [, kind, , key] = label.split(' ');
    const p = problemAt(`${MINIMAL.replace(PDP, '')}pdp: { kind: ${kind} }\n`, `pdp.${key}`);
    expect(p.message).toBe(`required when pdp.kind is "${kind}"`);
  });

  it('cross-field problems are reported together with field problems, so check lists them all at once', () => {
    const { list } = problems(
      `${MINIMAL}cache: { allowTtl: soon }\nadmin: { address: 0.0.0.0 }\nroutes:\n  - name: r\n    match: { path: /a }\n  - name: r\n    match: { path: 5 }\n    privileged: false\n`,
    );
    expect(list.map((p) => `${p.key}: ${p.message}`).sort()).toEqual([
      'admin.address: "0.0.0.0" is not loopback; set admin.allowNonLoopback: true to expose the admin API',
      'cache.allowTtl: expected a duration like "30s", got "soon"',
      'routes[0].action: required for a privileged route',
      'routes[0].sensitivity: required for a privileged route',
      'routes[1].match.path: expected string, got 5',
      'routes[1].name: duplicate route name "r"',
    ]);
  });

  it('says what was expected and what was found, in file order, for wrong types and enum values', () => {
    const { list } = problems(`${MINIMAL}cache: { maxEntries: lots }\nroutes:\n  - name: r\n    match: { path: /a }\n    sensitivity: extreme\n    action: a.b\n`);
    expect(list.map((p) => `${p.key}: ${p.message}`)).toEqual([
      'cache.maxEntries: expected number, got "lots"',
      'routes[0].sensitivity: expected one of "low", "medium", "high", "critical", got "extreme"',
    ]);
    const lines = list.map((p) => p.line!);
    expect(lines).toEqual([...lines].sort((a, b) => a - b));
    expect(list.map((p) => p.message).join('\n')).not.toMatch(/Invalid (input|option)/);
  });

  it('an empty required file path is one problem, not also "required"', () => {
    const { list } = problems(MINIMAL.replace('certFile: svid.pem', 'certFile: ""'));
    expect(list).toEqual([expect.objectContaining({ key: 'identity.certFile', message: 'must not be empty' })]);
  });

  it('a missing identity section is one problem', () => {
    const { list } = problems(UPSTREAM + PDP);
    expect(list.map((p) => [p.key, p.message])).toEqual([['identity', 'required']]);
  });

  it('pdp.policyFile is required for the embedded PDP', () => {
    const p = problemAt(MINIMAL.replace(PDP, ''), 'pdp.policyFile');
    expect(p.message).toBe('required when pdp.kind is "embedded"');
  });

  it('an issuer must give exactly one key source', () => {
    problemAt(`${MINIMAL}grants: { issuers: [{ issuer: "https://jit" }] }\n`, 'grants.issuers[0]');
    problemAt(`${MINIMAL}grants: { issuers: [{ issuer: "https://jit", jwksFile: a.json, publicKeyFile: k.pem }] }\n`, 'grants.issuers[0]');
  });
});

describe('isLoopback', () => {
  it.each(['127.0.0.1', '127.255.0.9', 'localhost', '::1'])('%s is loopback', (address) => expect(isLoopback(address)).toBe(true));
  it.each(['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', '127.0.0.1.evil', 'localhost.evil.com'])('%s is not loopback', (address) => expect(isLoopback(address)).toBe(false));
});
