// The README's grpc-js client ("HTTP/2 and gRPC"), run as a user pastes it: its four settings
// pointed at a real proxy and PKI, everything else byte for byte. Until the h2c upstream is in,
// what it can show is Portcullis's side: refusals read from error.code and error.details with the
// request id, the grant sent as metadata and verified, and a sidecar of the wrong SPIFFE ID refused.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configYaml, createPki, startUpstream, type Pki, type Upstream } from '../support/harness.ts';
import type { Instance } from '../../src/cli/instance.ts';
import { grantClaims, issuerKey, JIT_ISS, OWN_ID, signToken, startNamed } from './decision-support.ts';

const exec = promisify(execFile);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const CLIENT_ID = 'spiffe://example.org/ns/prod/sa/web';

/** The README's client, with its four settings (the lines that name them) replaced. */
function readmeClient(settings: { pki: string; me: string; sidecar: string; serviceId: string }): string {
  const block = [...README.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]!).find((b) => b.includes('createSsl'));
  expect(block, 'the README has a grpc-js client').toBeDefined();
  const set = (text: string, name: string, value: string) => {
    const line = new RegExp(`^const ${name} = '[^']*';`, 'm');
    expect(text, name).toMatch(line);
    return text.replace(line, `const ${name} = ${JSON.stringify(value)};`);
  };
  let js = set(block!, 'PKI', settings.pki);
  js = set(js, 'ME', settings.me);
  js = set(js, 'SIDECAR', settings.sidecar);
  return set(js, 'SERVICE_ID', settings.serviceId);
}

const ROUTES = `routes:
  - name: orders-get-grpc
    match: { path: /orders.v1.Orders/Get }
    action: orders.grpc
    resource: "grpc:Get"
    sensitivity: high
`;

describe('the README grpc-js client', () => {
  let pki: Pki;
  let upstream: Upstream;
  let proxy: Instance;
  let work: string;
  let jitKey: Awaited<ReturnType<typeof issuerKey>>;

  beforeAll(async () => {
    pki = await createPki();
    upstream = await startUpstream();
    jitKey = await issuerKey('jit');
    pki.write('jit.json', jitKey.jwks);
    pki.write('policy.yaml', `rules:\n  - { id: orders-grpc, effect: allow, subjects: ["${CLIENT_ID}"], actions: [orders.grpc], resources: ["grpc:*"] }\n`);
    // A high route: the grant floor demands a grant (the policy has no tiers, so no posture).
    proxy = (await startNamed(pki, 'readme-grpc.yaml', configYaml(pki, upstream.url, `${ROUTES}grants: { issuers: [{ issuer: "${JIT_ISS}", jwksFile: jit.json }] }\n`))).instance;
    const client = await pki.ca.svid('/ns/prod/sa/web');
    pki.write('web.pem', client.certPem);
    pki.write('web_key.pem', client.keyPem);
    // The client's own folder, as a user would have it: the script, orders.proto, node_modules.
    work = mkdtempSync(join(tmpdir(), 'portcullis-readme-grpc-'));
    symlinkSync(join(ROOT, 'node_modules'), join(work, 'node_modules'));
    const proto = /```proto\n([\s\S]*?)```/.exec(README)?.[1];
    expect(proto, 'the README has orders.proto').toContain('package orders.v1;');
    writeFileSync(join(work, 'orders.proto'), proto!);
  });
  afterAll(async () => {
    await proxy.close();
    await upstream.close();
    pki.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  const runClient = async (serviceId: string, grant?: string): Promise<string> => {
    const file = join(work, 'orders-client.mjs');
    writeFileSync(file, readmeClient({ pki: pki.dir, me: 'web', sidecar: `localhost:${proxy.proxyPort}`, serviceId }));
    const { stdout } = await exec(process.execPath, [file], { cwd: work, timeout: 15_000, env: { ...process.env, GRANT: grant ?? '' } });
    return stdout.trim();
  };

  it('prints the code and the reason of a refusal, with the request id', async () => {
    expect(await runClient(OWN_ID)).toMatch(/^UNAUTHENTICATED grant_required \(request id [0-9a-f-]{36}\)$/);
  });

  it('sends the grant as metadata: verified, then refused as 14 because the service speaks HTTP/1.1', async () => {
    const grant = await signToken(grantClaims({ sub: CLIENT_ID, scope: 'orders.grpc', resources: ['grpc:*'] }), { key: jitKey.key, kid: 'jit' });
    expect(await runClient(OWN_ID, grant)).toMatch(/^UNAVAILABLE upstream_unavailable \(request id [0-9a-f-]{36}\)$/);
    const expired = await signToken(grantClaims({ sub: CLIENT_ID, scope: 'orders.grpc', iat: Math.floor(Date.now() / 1000) - 120, exp: Math.floor(Date.now() / 1000) - 60 }), { key: jitKey.key, kid: 'jit' });
    expect(await runClient(OWN_ID, expired)).toMatch(/^UNAUTHENTICATED grant_expired /);
  });

  it('refuses a sidecar whose SVID is not SERVICE_ID, before any request is sent', async () => {
    const out = await runClient('spiffe://example.org/ns/prod/sa/someone-else');
    expect(out).toMatch(/^UNAVAILABLE .*not spiffe:\/\/example\.org\/ns\/prod\/sa\/someone-else/);
    expect(out).toMatch(/\(request id -\)$/);
  });
});
