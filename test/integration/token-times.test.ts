// Token times (SPEC "Tokens"): a grant or posture assertion whose iat is later than now +
// clockSkew is refused (grant_invalid, posture_invalid); lifetimes are measured from iat, so an
// iat ahead of us, even within clockSkew, never stretches maxGrantTtl, grants.maxLifetime or
// posture.maxAge, nor lets a grant escape a revocation by sub. Real signed tokens through a
// real proxy with real mTLS peers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from 'undici';
import { mintPosture } from '../../src/cli/mint.ts';
import type { Instance } from '../../src/cli/instance.ts';
import { clientAgent, configYaml, createPki, get, startProxy, startUpstream, type Pki, type Upstream } from '../support/harness.ts';
import { admin, grantClaims, issuerKey, JIT_ISS, POSTURE_ISS, signToken, sleep, SUPPORT_ID, TD, type GrantClaims, type IssuerKey } from './decision-support.ts';

const POLICY = `tiers:
  high: { grant: true, maxGrantTtl: 15m }
rules:
  - id: support
    effect: allow
    subjects: ["spiffe://example.org/ns/prod/sa/support-*"]
    actions: ["orders.refund", "notes.write"]
`;

const EXTRA = `routes:
  - name: refund
    match: { methods: [POST], path: /refund }
    action: orders.refund
    resource: order
    sensitivity: high
  - name: notes
    match: { methods: [POST], path: /notes }
    action: notes.write
    resource: note
    sensitivity: low
grants:
  issuers: [{ issuer: "${JIT_ISS}", jwksFile: jit-jwks.json }]
  clockSkew: 2s
  maxLifetime: 1h
posture:
  issuers: [{ issuer: "${POSTURE_ISS}", jwksFile: posture-jwks.json }]
  maxAge: 3s
`;

describe('token times: iat', () => {
  let pki: Pki;
  let upstream: Upstream;
  let proxy: Instance;
  let jit: IssuerKey;
  let postureKey: IssuerKey;
  const agents = new Map<string, Agent>();

  const now = () => Date.now() / 1000;
  const grant = (c: GrantClaims) => signToken(grantClaims(c), { key: jit.key, kid: jit.kid });
  async function as(workload: string): Promise<Agent> {
    let agent = agents.get(workload);
    if (!agent) agents.set(workload, (agent = clientAgent(pki.ca.bundlePem, await pki.ca.svid(`/ns/prod/sa/${workload}`))));
    return agent;
  }
  async function post(path: string, tokens: { grant?: string; posture?: string }, workload = 'support-bot') {
    const headers: Record<string, string> = {};
    if (tokens.grant) headers['x-jit-grant'] = tokens.grant;
    if (tokens.posture) headers['x-device-posture'] = tokens.posture;
    const reply = await get(await as(workload), proxy.proxyPort, path, { method: 'POST', headers });
    return { status: reply.status, reason: reply.status === 200 ? undefined : (JSON.parse(reply.text) as { reason: string }).reason };
  }

  beforeAll(async () => {
    pki = await createPki();
    upstream = await startUpstream();
    [jit, postureKey] = await Promise.all([issuerKey('jit-1'), issuerKey('posture-1')]);
    pki.write('jit-jwks.json', jit.jwks);
    pki.write('posture-jwks.json', postureKey.jwks);
    pki.write('policy.yaml', POLICY);
    proxy = await startProxy(pki, configYaml(pki, upstream.url, EXTRA));
  });
  afterAll(async () => {
    await Promise.all([...agents.values()].map((a) => a.close()));
    await proxy.close();
    await upstream.close();
    pki.cleanup();
  });

  it('a grant issued 10 minutes in the future ({iat: now+600, exp: now+900}) is 401 grant_invalid', async () => {
    const t = Math.floor(now());
    expect(await post('/refund', { grant: await grant({ iat: t + 600, exp: t + 900 }) })).toEqual({ status: 401, reason: 'grant_invalid' });
  });

  it('a grant whose future iat would hide a 55-minute life behind a 5-minute one ({iat: now+3000, exp: now+3300}, maxGrantTtl 15m) is 401 grant_invalid', async () => {
    const t = Math.floor(now());
    expect(await post('/refund', { grant: await grant({ iat: t + 3000, exp: t + 3300 }) })).toEqual({ status: 401, reason: 'grant_invalid' });
  });

  it('a grant whose iat is 30 s ahead does not survive a revocation by sub (it is refused before and after)', async () => {
    const t = Math.floor(now());
    const token = await grant({ sub: `spiffe://${TD}/ns/prod/sa/support-ahead`, iat: t + 30, exp: t + 600 });
    expect(await post('/refund', { grant: token }, 'support-ahead')).toEqual({ status: 401, reason: 'grant_invalid' });
    expect((await admin(proxy, 'POST', '/admin/revoke', { sub: `spiffe://${TD}/ns/prod/sa/support-ahead` })).status).toBe(200);
    expect(await post('/refund', { grant: token }, 'support-ahead')).toEqual({ status: 401, reason: 'grant_invalid' });
  });

  it('a grant refused for an iat beyond clockSkew is accepted once iat - clockSkew has passed (the refusal cache never changes the answer)', async () => {
    const iat = Math.ceil(now()) + 3; // 1 to 2 s beyond the 2 s skew
    const token = await grant({ iat, exp: iat + 600 });
    expect(await post('/refund', { grant: token })).toEqual({ status: 401, reason: 'grant_invalid' });
    await sleep((iat - 2) * 1000 - Date.now() + 50);
    expect(await post('/refund', { grant: token })).toEqual({ status: 200, reason: undefined });
  });

  it('an iat within clockSkew ahead counts from when the grant is first seen: an exactly-15-minute grant then lives longer than 15 minutes from now, so grant_ttl_too_long', async () => {
    const iat = now() + 1.5;
    expect(await post('/refund', { grant: await grant({ iat, exp: iat + 900 }) })).toEqual({ status: 403, reason: 'grant_ttl_too_long' });
    // The same lifetime issued by a clock that is not ahead is fine.
    const t = now() - 0.5;
    expect(await post('/refund', { grant: await grant({ iat: t, exp: t + 900 }) })).toEqual({ status: 200, reason: undefined });
  });

  it('a grant whose iat is within clockSkew ahead does not survive a revocation by sub', async () => {
    const sub = `spiffe://${TD}/ns/prod/sa/support-skewed`;
    const iat = now() + 1.5;
    const token = await grant({ sub, iat, exp: iat + 600 });
    // Issued before the revocation by a clock 1.5 s ahead, but first shown after it: its iat then
    // claims a time after the revocation, which only clockSkew can explain. Refused (fail closed).
    const unseen = await grant({ sub, iat, exp: iat + 600 });
    expect(await post('/refund', { grant: token }, 'support-skewed')).toEqual({ status: 200, reason: undefined });
    expect((await admin(proxy, 'POST', '/admin/revoke', { sub })).status).toBe(200);
    expect(await post('/refund', { grant: token }, 'support-skewed')).toEqual({ status: 403, reason: 'grant_revoked' });
    expect(await post('/refund', { grant: unseen }, 'support-skewed')).toEqual({ status: 403, reason: 'grant_revoked' });
  });

  it('grants.maxLifetime (1h): a 2-hour grant is 403 grant_ttl_too_long on any route, tier or not', async () => {
    const t = Math.floor(now());
    expect(await post('/notes', { grant: await grant({ scope: 'notes.write', iat: t, exp: t + 7200 }) })).toEqual({ status: 403, reason: 'grant_ttl_too_long' });
    expect(await post('/notes', { grant: await grant({ scope: 'notes.write', iat: t, exp: t + 3600 }) })).toEqual({ status: 200, reason: undefined });
  });

  it('a posture assertion issued an hour in the future is 401 posture_invalid (it would never go stale)', async () => {
    const future = await mintPosture({ key: postureKey.key, kid: postureKey.kid, iss: POSTURE_ISS, sub: SUPPORT_ID, trust: 'high', ttl: '10m', nowMs: Date.now() + 3_600_000 });
    expect(await post('/notes', { posture: future })).toEqual({ status: 401, reason: 'posture_invalid' });
  });

  it('posture.maxAge (3 s) counts from first sight when iat is within clockSkew ahead: stale 3 s after, not 3 s after iat', async () => {
    const ahead = await mintPosture({ key: postureKey.key, kid: postureKey.kid, iss: POSTURE_ISS, sub: SUPPORT_ID, trust: 'high', ttl: '10m', nowMs: Date.now() + 1_900 });
    const seen = Date.now();
    expect(await post('/notes', { posture: ahead })).toEqual({ status: 200, reason: undefined });
    await sleep(seen + 3_200 - Date.now());
    expect(await post('/notes', { posture: ahead })).toEqual({ status: 401, reason: 'posture_stale' });
  });
});
