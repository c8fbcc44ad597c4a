// Keeping revocations (SPEC "Fleet-wide revocation", last part; issue 10 section 3): a jti
// revocation outlives the first grant seen under it; the store never forgets one to make room,
// and at revocation.maxEntries privileged requests refuse with 503 revocation_unavailable
// (never cached) until expired entries are swept. Real signed grants through a real proxy.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from 'undici';
import type { Instance } from '../../src/cli/instance.ts';
import { memoryAuditLog } from '../../src/telemetry/audit.ts';
import { clientAgent, configYaml, createPki, get, startUpstream, type Pki, type Upstream } from '../support/harness.ts';
import { admin, grantClaims, issuerKey, JIT_ISS, metric, newJti, signToken, sleep, startNamed, type GrantClaims, type IssuerKey } from './decision-support.ts';

const POLICY = `rules:
  - id: support
    effect: allow
    subjects: ["spiffe://example.org/ns/prod/sa/support-*"]
    actions: ["notes.write"]
`;

function extra(more: string): string {
  return `routes:
  - name: health
    match: { methods: [GET], path: /healthz }
    privileged: false
  - name: notes
    match: { methods: [POST], path: /notes }
    action: notes.write
    resource: note
    sensitivity: low
${more}`;
}

describe('revocations are kept, and never forgotten to make room', () => {
  let pki: Pki;
  let upstream: Upstream;
  let agent: Agent;
  let jit: IssuerKey;
  const instances: Instance[] = [];

  const grant = (c: GrantClaims) => signToken(grantClaims({ scope: 'notes.write', ...c }), { key: jit.key, kid: jit.kid });
  async function post(instance: Instance, grantToken?: string) {
    const reply = await get(agent, instance.proxyPort, '/notes', { method: 'POST', headers: grantToken ? { 'x-jit-grant': grantToken } : {} });
    return { status: reply.status, reason: reply.status === 200 ? undefined : (JSON.parse(reply.text) as { reason: string }).reason };
  }
  async function start(name: string, more: string): Promise<{ instance: Instance; audit: ReturnType<typeof memoryAuditLog> }> {
    const started = await startNamed(pki, name, configYaml(pki, upstream.url, extra(more)));
    instances.push(started.instance);
    return started;
  }

  beforeAll(async () => {
    pki = await createPki();
    upstream = await startUpstream();
    jit = await issuerKey('jit-1');
    pki.write('jit-jwks.json', jit.jwks);
    pki.write('policy.yaml', POLICY);
    agent = clientAgent(pki.ca.bundlePem, await pki.ca.svid('/ns/prod/sa/support-bot'));
  });
  afterAll(async () => {
    for (const instance of instances) await instance.close();
    await agent.close();
    await upstream.close();
    pki.cleanup();
  });

  it('a jti revocation outlives the first grant seen under it: grant B with the same jti and a later exp is still refused after A expired', async () => {
    const { instance } = await start('jti.yaml', `grants: { issuers: [{ issuer: "${JIT_ISS}", jwksFile: jit-jwks.json }] }\n`);
    const jti = newJti('reused');
    const now = Math.floor(Date.now() / 1000);
    const a = await grant({ jti, iat: now, exp: now + 3 });
    const b = await grant({ jti, iat: now, exp: now + 600 });
    expect(await post(instance, a)).toEqual({ status: 200, reason: undefined });
    expect((await admin(instance, 'POST', '/admin/revoke', { jti })).status).toBe(200);
    expect(await post(instance, a)).toEqual({ status: 403, reason: 'grant_revoked' });
    expect(await post(instance, b)).toEqual({ status: 403, reason: 'grant_revoked' });
    // Past A's exp, and past the next sweep (every second) after it.
    await sleep((now + 3) * 1000 - Date.now() + 1_600);
    expect(await post(instance, b)).toEqual({ status: 403, reason: 'grant_revoked' });
    expect(await metric(instance, 'portcullis_revocation_entries')).toBe(1);
  });

  it('at revocation.maxEntries privileged requests get 503 revocation_unavailable (never cached), nothing is forgotten, and requests pass again once entries expire and are swept', async () => {
    const { instance, audit } = await start(
      'bound.yaml',
      `grants: { issuers: [{ issuer: "${JIT_ISS}", jwksFile: jit-jwks.json }], maxLifetime: 2s, clockSkew: 1s }\nrevocation: { maxEntries: 3 }\n`,
    );
    const now = Math.floor(Date.now() / 1000);
    const kept = newJti('kept');
    const keptGrant = await grant({ jti: kept, iat: now, exp: now + 2 });
    expect(await post(instance, keptGrant)).toEqual({ status: 200, reason: undefined });
    expect((await admin(instance, 'POST', '/admin/revoke', { jti: kept })).status).toBe(200);
    expect((await admin(instance, 'POST', '/admin/revoke', { jti: newJti('r') })).status).toBe(200);
    // Two entries: still room. A request without a grant is decided (and its allow cached).
    expect(await post(instance)).toEqual({ status: 200, reason: undefined });
    expect((await admin(instance, 'POST', '/admin/revoke', { sub: 'spiffe://example.org/ns/prod/sa/gone' })).status).toBe(200);
    expect(await metric(instance, 'portcullis_revocation_entries')).toBe(3);
    // Full: every privileged request refuses, cached allow or not; unprivileged ones still pass.
    const pdpBefore = await metric(instance, 'portcullis_pdp_requests_total');
    expect(await post(instance)).toEqual({ status: 503, reason: 'revocation_unavailable' });
    expect(await post(instance, await grant({ iat: now, exp: now + 2 }))).toEqual({ status: 503, reason: 'revocation_unavailable' });
    expect((await get(agent, instance.proxyPort, '/healthz')).status).toBe(200);
    expect(await metric(instance, 'portcullis_pdp_requests_total')).toBe(pdpBefore);
    expect(audit.records.at(-1)).toMatchObject({ route: 'notes', decision: 'deny', reason: 'revocation_unavailable', source: 'local' });
    // A revocation beyond the bound is still taken and kept, never dropped.
    expect((await admin(instance, 'POST', '/admin/revoke', { jti: newJti('beyond') })).status).toBe(200);
    expect(await metric(instance, 'portcullis_revocation_entries')).toBe(4);
    // Kept until revocation time + maxLifetime (2 s) + clockSkew (1 s); the sweep runs every second.
    const deadline = Date.now() + 8_000;
    while ((await metric(instance, 'portcullis_revocation_entries')) > 0 && Date.now() < deadline) await sleep(200);
    expect(await metric(instance, 'portcullis_revocation_entries')).toBe(0);
    expect(await post(instance)).toEqual({ status: 200, reason: undefined });
  });
});
