// README "Your own service in ten minutes", run as written: `portcullis dev-pki`, the examples/
// config and policy unchanged but for ports, `portcullis check`, `portcullis run` in front of a
// real HTTP service, a grant from `portcullis grant mint`, and curl with the dev-pki client SVID.
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { X509Certificate } from 'node:crypto';
import { startChildProxy } from '../support/child-proxy.ts';
import { runPortcullis } from '../support/run-command.ts';

const exec = promisify(execFile);
const EXAMPLES = fileURLToPath(new URL('../../examples/', import.meta.url));

const portcullis = (...args: string[]) => runPortcullis(args, { timeout: 15_000 });

describe('your own service in ten minutes', () => {
  let dir: string;
  let pki: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-own-'));
    pki = join(dir, 'pki');
    copyFileSync(join(EXAMPLES, 'portcullis.yaml'), join(dir, 'portcullis.yaml'));
    copyFileSync(join(EXAMPLES, 'policy.yaml'), join(dir, 'policy.yaml'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('dev-pki writes the CA, SVIDs, issuer keys and a README, and refuses to overwrite without --force', async () => {
    const args = ['dev-pki', '--out', pki, '--trust-domain', 'example.org', '--workload', 'my-service', '--workload', 'my-client'];
    const made = await portcullis(...args);
    expect([made.code, made.stderr]).toEqual([0, '']);
    expect(made.stdout).toContain('never for production');
    const server = new X509Certificate(readFileSync(join(pki, 'my-service.pem')));
    expect(server.subjectAltName).toBe('URI:spiffe://example.org/ns/default/sa/my-service, DNS:localhost');
    expect(new X509Certificate(readFileSync(join(pki, 'my-client.pem'))).subjectAltName).toBe('URI:spiffe://example.org/ns/default/sa/my-client');
    expect(server.verify(new X509Certificate(readFileSync(join(pki, 'bundle.pem'))).publicKey)).toBe(true);
    expect(statSync(join(pki, 'my-client_key.pem')).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(join(pki, 'grant-issuer-jwks.json'), 'utf8')).keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', kid: 'grant-1', alg: 'ES256' });
    expect(JSON.parse(readFileSync(join(pki, 'posture-issuer-jwks.json'), 'utf8')).keys[0]).not.toHaveProperty('d');
    const readme = readFileSync(join(pki, 'README.txt'), 'utf8');
    expect(readme).toContain('NEVER FOR PRODUCTION');
    for (const name of ['bundle.pem', 'my-service.pem', 'my-client_key.pem', 'grant-issuer_key.pem', 'grant-issuer-jwks.json', 'posture-issuer_key.pem', 'posture-issuer-jwks.json']) expect(readme).toContain(name);
    const bundle = readFileSync(join(pki, 'bundle.pem'), 'utf8');
    const again = await portcullis(...args);
    expect([again.code, again.stderr]).toEqual([1, expect.stringContaining('already has bundle.pem')]);
    expect(readFileSync(join(pki, 'bundle.pem'), 'utf8')).toBe(bundle);
    // A path workload: spiffe://TD + the path, files named after its last segment.
    const other = join(dir, 'other');
    expect((await portcullis('dev-pki', '--out', other, '--trust-domain', 'example.org', '--workload', '/ns/prod/sa/web')).code).toBe(0);
    expect(new X509Certificate(readFileSync(join(other, 'web.pem'))).subjectAltName).toContain('URI:spiffe://example.org/ns/prod/sa/web');
    expect((await portcullis('dev-pki', '--out', other, '--trust-domain', 'example.org', '--workload', '/ns/prod/sa/web', '--force')).code).toBe(0);
    expect(existsSync(join(other, 'README.txt'))).toBe(true);
  });

  it('check passes on the example config over those files, with no warning', async () => {
    expect(await portcullis('check', '--config', join(dir, 'portcullis.yaml'))).toEqual({ code: 0, stderr: '', stdout: `${join(dir, 'portcullis.yaml')}: ok\n` });
  });

  it('the proxy forwards a dev-pki client with a minted grant to the service (200), and refuses it without one', { timeout: 60_000 }, async () => {
    const service: Server = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`hello from my service, ${req.headers['x-forwarded-client-cert'] ? 'caller known' : 'caller unknown'}\n`);
    });
    await new Promise<void>((resolve) => service.listen(0, '127.0.0.1', resolve));
    const servicePort = (service.address() as { port: number }).port;
    // The example as shipped, but on free ports (8443, 9901 and 8080 may be taken here).
    const example = readFileSync(join(dir, 'portcullis.yaml'), 'utf8');
    const config = example.replace('http://127.0.0.1:8080', `http://127.0.0.1:${servicePort}`).replace('port: 8443', 'port: 0').replace('port: 9901', 'port: 0');
    expect(config).not.toBe(example);
    writeFileSync(join(dir, 'ports.yaml'), config);
    const proxy = await startChildProxy(join(dir, 'ports.yaml'));
    try {
      const grant = await portcullis('grant', 'mint', '--key', join(pki, 'grant-issuer_key.pem'), '--kid', 'grant-1', '--iss', 'https://grants.example.org', '--sub', 'spiffe://example.org/ns/default/sa/my-client', '--aud', 'spiffe://example.org/ns/default/sa/my-service', '--scope', 'my-service.call', '--ttl', '10m');
      expect(grant.code).toBe(0);
      const curl = (path: string, ...extra: string[]) =>
        exec('curl', ['-sS', '-w', '\n%{http_code}', '--cacert', join(pki, 'bundle.pem'), '--cert', join(pki, 'my-client.pem'), '--key', join(pki, 'my-client_key.pem'), ...extra, `https://localhost:${proxy.port}${path}`]).then(({ stdout }) => {
          const lines = stdout.trimEnd().split('\n');
          return { status: lines.at(-1), body: lines.slice(0, -1).join('\n').trimEnd() };
        });
      expect(await curl('/hello', '-H', `x-jit-grant: ${grant.stdout.trim()}`)).toEqual({ status: '200', body: 'hello from my service, caller known' });
      const without = await curl('/hello');
      expect([without.status, JSON.parse(without.body).reason]).toEqual(['401', 'grant_required']);
      expect((await curl('/healthz')).status).toBe('200');
    } finally {
      expect(await proxy.stop()).toBe(0);
      await new Promise<void>((resolve) => service.close(() => resolve()));
    }
  });
});
