// The command line as a user runs it: check, svid inspect, and the demo's printed curl lines.
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { x509 } from '../../src/cli/dev-pki.ts';
import { configYaml, createPki, DEFAULT_ROUTES, DevCa, type Pki } from '../support/harness.ts';
import { MAIN } from '../support/child-proxy.ts';

const exec = promisify(execFile);

async function portcullis(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [MAIN, ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('portcullis check', () => {
  let pki: Pki;
  beforeAll(async () => {
    pki = await createPki();
  });
  afterAll(() => pki.cleanup());

  it('accepts a good config and its identity files', async () => {
    const file = pki.write('good.yaml', configYaml(pki, 'http://127.0.0.1:1', DEFAULT_ROUTES));
    const result = await portcullis('check', '--config', file);
    expect(result).toMatchObject({ code: 0 });
    expect(result.stdout).toContain('ok');
  });

  it('lists each problem with file, key path and line, and exits 1', async () => {
    const yaml = configYaml(pki, 'http://127.0.0.1:1', DEFAULT_ROUTES).replace('admin: { address: 127.0.0.1, port: 0 }', 'admin: { address: 127.0.0.1, port: 0 }\ncache: { allowTtl: soon }\nbogus: 1');
    const file = pki.write('bad.yaml', yaml);
    const result = await portcullis('check', '--config', file);
    expect(result.code).toBe(1);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toContain(`${file}:${yaml.split('\n').findIndex((l) => l.startsWith('cache:')) + 1}: cache.allowTtl: expected a duration like "30s", got "soon"`);
    expect(lines.some((l) => l.includes(': bogus: unknown key'))).toBe(true);
  });

  it('names the identity file whose key does not match its certificate', async () => {
    const other = await pki.ca.svid('/ns/prod/sa/other');
    pki.write('wrong_key.pem', other.keyPem);
    const file = pki.write('mismatch.yaml', configYaml(pki, 'http://127.0.0.1:1').replace('keyFile: svid_key.pem', 'keyFile: wrong_key.pem'));
    const result = await portcullis('check', '--config', file);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/identity\.keyFile: .*key does not match the certificate/);
  });

  it('refuses a missing file and a missing --config', async () => {
    expect((await portcullis('check', '--config', `${pki.dir}/nope.yaml`)).stderr).toContain('cannot read: ENOENT');
    const usage = await portcullis('check');
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('--config FILE is required');
  });
});

describe('portcullis svid inspect', () => {
  let pki: Pki;
  beforeAll(async () => {
    pki = await createPki();
  });
  afterAll(() => pki.cleanup());

  it('prints the SPIFFE ID, expiry and chain, and verifies against a bundle', async () => {
    const svid = await pki.ca.svid('/ns/prod/sa/web');
    const file = pki.write('web.pem', svid.certPem);
    const result = await portcullis('svid', 'inspect', file, '--bundle', `${pki.dir}/bundle.pem`);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('spiffe_id: spiffe://example.org/ns/prod/sa/web');
    expect(result.stdout).toContain(`expires: ${svid.cert.notAfter.toISOString()}`);
    expect(result.stdout).toContain('verified: chains to');
  });

  it('exits 1 naming the rule a CA leaf, two URI SANs, an expired leaf, or another bundle break', async () => {
    const cases: [string, Promise<{ certPem: string }>, RegExp][] = [
      ['ca.pem', pki.ca.svid('/ns/x', { ca: true, keyUsages: x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.digitalSignature }), /leaf_is_ca/],
      ['two.pem', pki.ca.svid('/ns/x', { uris: ['spiffe://example.org/a', 'spiffe://example.org/b'] }), /uri_san_count/],
      ['expired.pem', pki.ca.svid('/ns/x', { notBefore: new Date(Date.now() - 7200_000), notAfter: new Date(Date.now() - 3600_000) }), /expired/],
    ];
    for (const [name, issued, rule] of cases) {
      const result = await portcullis('svid', 'inspect', pki.write(name, (await issued).certPem), '--bundle', `${pki.dir}/bundle.pem`);
      expect(result.code, name).toBe(1);
      expect(result.stderr, name).toMatch(rule);
    }
    const stranger = await (await DevCa.create('example.org')).svid('/ns/x');
    const foreign = await portcullis('svid', 'inspect', pki.write('foreign.pem', stranger.certPem), '--bundle', `${pki.dir}/bundle.pem`);
    expect(foreign.code).toBe(1);
    expect(foreign.stderr).toMatch(/untrusted_chain/);
    const garbage = await portcullis('svid', 'inspect', pki.write('garbage.pem', 'not a certificate'));
    expect(garbage.code).toBe(1);
    expect(garbage.stderr).toContain('no PEM certificate found');
  });
});

describe('portcullis grant mint and posture mint', () => {
  let pki: Pki;
  beforeAll(async () => {
    pki = await createPki();
  });
  afterAll(() => pki.cleanup());

  it('mints a grant that verifies, and refuses a --sub that is not a SPIFFE ID or a bad --trust', async () => {
    const key = pki.write('issuer_key.pem', pki.server.keyPem);
    const ok = await portcullis('grant', 'mint', '--key', key, '--iss', 'https://jit.example.org', '--sub', 'spiffe://example.org/ns/prod/sa/web', '--aud', 'spiffe://example.org/ns/prod/sa/orders-api', '--scope', 'orders.refund', '--ttl', '5m', '--resources', 'order:1,order:2');
    expect(ok.code).toBe(0);
    const [header, payload] = ok.stdout.trim().split('.');
    expect(JSON.parse(Buffer.from(header!, 'base64url').toString())).toMatchObject({ alg: 'ES256' });
    expect(JSON.parse(Buffer.from(payload!, 'base64url').toString())).toMatchObject({ sub: 'spiffe://example.org/ns/prod/sa/web', scope: 'orders.refund', resources: ['order:1', 'order:2'] });
    const badSub = await portcullis('grant', 'mint', '--key', key, '--iss', 'x', '--sub', 'support-bot', '--aud', 'y', '--scope', 'a', '--ttl', '5m');
    expect([badSub.code, badSub.stderr]).toEqual([2, expect.stringContaining('--sub: expected a SPIFFE ID')]);
    const missing = await portcullis('grant', 'mint', '--key', key);
    expect([missing.code, missing.stderr]).toEqual([2, expect.stringContaining('--iss is required')]);
    const badTrust = await portcullis('posture', 'mint', '--key', key, '--iss', 'x', '--sub', 'spiffe://example.org/a', '--trust', 'super', '--ttl', '5m');
    expect([badTrust.code, badTrust.stderr]).toEqual([2, expect.stringContaining('--trust must be low, medium or high')]);
  });
});

describe('portcullis demo', () => {
  it('falls back to a free port when the preferred one is taken', async () => {
    const { createServer } = await import('node:net');
    const { freePort } = await import('../../src/cli/demo.ts');
    const hold = createServer();
    await new Promise<void>((resolve) => hold.listen(0, '127.0.0.1', resolve));
    const taken = (hold.address() as { port: number }).port;
    try {
      const port = await Promise.race([freePort(taken), new Promise<never>((_, reject) => setTimeout(() => reject(new Error('freePort hung')), 3000))]);
      expect(port).not.toBe(taken);
      expect(port).toBeGreaterThan(0);
    } finally {
      hold.close();
    }
  });

  it('prints curl commands that work when pasted', { timeout: 60_000 }, async () => {
    const child = spawn(process.execPath, [MAIN, 'demo'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '';
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`demo did not print its commands:\n${out}`)), 20_000);
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
          out += chunk;
          if (out.includes('Press Ctrl-C')) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      const commands = out.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('curl ') || l.startsWith('G='));
      // In the order the demo prints them: [status, reason] (reason '' for a service answer).
      const expected: [string, string][] = [
        ['200', ''], ['403', 'peer_not_allowed'], ['000', ''], ['000', ''], ['400', 'bad_path'], ['403', 'no_route'],
        ['200', ''], ['401', 'grant_required'], ['401', 'grant_invalid'], ['403', 'grant_subject_mismatch'], ['403', 'policy_denied'],
        ['403', 'grant_scope'], ['403', 'grant_ttl_too_long'], ['401', 'posture_required'], ['403', 'posture_insufficient'],
        ['200', ''], ['200', ''], ['403', 'grant_revoked'],
      ];
      expect(commands).toHaveLength(expected.length + 1);
      for (const [index, [status, reason]] of expected.entries()) {
        const { stdout } = await exec('bash', ['-c', `${commands[index]} -w '\\n%{http_code}' || true`]);
        const lines = stdout.trimEnd().split('\n');
        const body = lines.slice(0, -1).join('\n');
        expect([index, lines.at(-1)], commands[index]).toEqual([index, status]);
        if (reason) expect(JSON.parse(body).reason, commands[index]).toBe(reason);
        if (index === 0) expect(body).toContain('URI=spiffe://example.org/ns/prod/sa/support-bot');
        if (index === 6) expect(body).toContain('x-jit-grant-id');
      }
      // The expiring grant: allowed at first, then 401 once its 5 s are up.
      const { stdout: codes } = await exec('bash', ['-c', commands.at(-1)!], { timeout: 20_000 });
      const seen = codes.trim().split(/\s+/);
      expect(seen[0]).toBe('200');
      expect(seen.at(-1)).toBe('401');
      expect(seen.indexOf('401')).toBeGreaterThanOrEqual(4);
      // Ctrl-C right after privileged requests (audit lines still being written): the demo stops
      // promptly and removes its folder, private keys included.
      const demoDir = /--cacert (\S+)\/bundle\.pem/.exec(commands[0]!)![1]!;
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      await exec('bash', ['-c', `${commands[6]} >/dev/null; kill -INT ${child.pid}`]);
      const code = await Promise.race([exited, new Promise<string>((resolve) => setTimeout(() => resolve('still running'), 5000))]);
      expect(code).not.toBe('still running');
      expect(existsSync(demoDir)).toBe(false);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
