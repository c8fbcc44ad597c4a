// The decision path without sockets: real signed tokens and the embedded PDP, driven through
// Authorizer.authorize. What the allow Verdict names (grant, posture deadline), the shared
// allow object, the no-await cache hit, and a PDP error becoming 503 that is never cached.
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { createLocalJWKSet, exportJWK } from 'jose';
import { DecisionPath } from '../../../src/decision/decision-path.ts';
import { DecisionCache } from '../../../src/decision/decision-cache.ts';
import { Revocations } from '../../../src/decision/revocations.ts';
import type { RequestFacts, Verdict } from '../../../src/decision/authorizer.ts';
import { EmbeddedPdp, policySchema } from '../../../src/pdp/embedded-policy.ts';
import { pdpError, type Pdp } from '../../../src/pdp/pdp.ts';
import { mintGrant, mintPosture } from '../../../src/cli/mint.ts';
import { parseSpiffeId } from '../../../src/identity/spiffe-id.ts';
import type { PeerIdentity } from '../../../src/identity/peer-verifier.ts';
import type { Route, Sensitivity } from '../../../src/routing/route-table.ts';
import { shapeGrant } from '../../../src/tokens/grant.ts';
import { shapePosture } from '../../../src/tokens/posture.ts';
import { TokenVerifier } from '../../../src/tokens/token-verifier.ts';
import { createMetrics } from '../../../src/telemetry/metrics.ts';
import { memoryAuditLog } from '../../../src/telemetry/audit.ts';

const SUPPORT = 'spiffe://example.org/ns/prod/sa/support-bot';
const OWN = 'spiffe://example.org/ns/prod/sa/orders-api';
const JIT = 'https://jit.example.org';
const POSTURE = 'https://posture.example.org';
const MAX_AGE = 15 * 60_000;

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const keys = createLocalJWKSet({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' }] });
const peer: PeerIdentity = { svid: { id: parseSpiffeId(SUPPORT), chain: [], leafSha256Hex: 'ab', leafSha256B64u: 'leaf', notAfter: new Date(Date.now() + 3_600_000) }, allowed: true };
const policy = new EmbeddedPdp(policySchema.parse({ rules: [{ id: 'support', effect: 'allow', subjects: [SUPPORT], actions: ['orders.*'] }] }));

const revocations: Revocations[] = [];
afterAll(() => revocations.forEach((r) => r.stop()));

function decisionPath(pdp: Pdp = policy): { path: DecisionPath; metrics: ReturnType<typeof createMetrics> } {
  const metrics = createMetrics({ defaultMetrics: false });
  const verifier = <T>(shape: (claims: Parameters<typeof shapeGrant>[0], token: string, now: number) => T, iss: string, audience: string[] | undefined) =>
    new TokenVerifier({ shape, issuers: new Map([[iss, keys]]), audience, clockSkewMs: 2_000, maxTokenBytes: 8192, requiredClaims: ['exp', 'iat', 'sub'], cacheEntries: 100 });
  const store = new Revocations({ sweepIntervalMs: 3_600_000 });
  revocations.push(store);
  const path = new DecisionPath({
    generation: 1,
    pdp,
    grants: verifier(shapeGrant, JIT, [OWN]),
    postures: verifier(shapePosture, POSTURE, undefined),
    grantHeader: 'x-jit-grant',
    postureHeader: 'x-device-posture',
    intentHeader: 'x-intent',
    postureMaxAgeMs: MAX_AGE,
    grantMaxLifetimeMs: 3_600_000,
    allowTtlMs: 30_000,
    denyTtlMs: 2_000,
    pdpTimeoutMs: 100,
    cache: new DecisionCache(100, metrics),
    revocations: store,
    metrics,
    audit: memoryAuditLog(),
  });
  return { path, metrics };
}

function facts(headers: Record<string, string>, sensitivity: Sensitivity = 'medium'): RequestFacts {
  const route: Route = { name: `refund-${sensitivity}`, privileged: true, action: 'orders.refund', sensitivity, cacheTtlMs: undefined, resource: ['order:42'] };
  return { peer, route, resource: 'order:42', method: 'POST', headers, requestId: 'r', path: '/orders/42/refund', peerAddress: '127.0.0.1', peerPort: 1 };
}

const grant = (ttl = '10m') => mintGrant({ key: privateKey, kid: 'k1', iss: JIT, sub: SUPPORT, aud: OWN, scope: 'orders.refund', ttl, jti: 'g-1' });
const posture = (ttl: string, nowMs = Date.now()) => mintPosture({ key: privateKey, kid: 'k1', iss: POSTURE, sub: SUPPORT, trust: 'high', ttl, nowMs });
const claims = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { iat: number; exp: number };

describe('the allow Verdict names its grounds', () => {
  it('the grant (jti, exp) and the posture deadline: its exp when that comes before maxAge', async () => {
    const { path } = decisionPath();
    const g = await grant();
    const p = await posture('10m');
    const verdict = await path.authorize(facts({ 'x-jit-grant': g, 'x-device-posture': p }));
    expect(verdict).toEqual({ allow: true, grantId: 'g-1', grantExpMs: claims(g).exp * 1000, postureDeadlineMs: claims(p).exp * 1000 });
  });

  it('the posture deadline is iat + posture.maxAge when that comes before its exp, also without a grant', async () => {
    const { path } = decisionPath();
    const p = await posture('1h');
    const verdict = await path.authorize(facts({ 'x-device-posture': p }));
    expect(verdict).toEqual({ allow: true, grantId: undefined, grantExpMs: undefined, postureDeadlineMs: claims(p).iat * 1000 + MAX_AGE });
  });

  it('no posture assertion: no posture deadline', async () => {
    const { path } = decisionPath();
    expect(await path.authorize(facts({ 'x-jit-grant': await grant() }))).toMatchObject({ allow: true, grantId: 'g-1', postureDeadlineMs: undefined });
  });

  it('no grant and no posture: one shared, frozen allow, on a miss and on a hit', async () => {
    const { path } = decisionPath();
    const miss = await path.authorize(facts({}, 'low'));
    const hit = path.authorize(facts({}, 'low'));
    expect(hit).not.toBeInstanceOf(Promise);
    expect(hit).toBe(miss);
    expect(Object.isFrozen(hit)).toBe(true);
    expect(hit).toEqual({ allow: true, grantId: undefined, grantExpMs: undefined, postureDeadlineMs: undefined });
  });

  it('a cache hit with cached tokens answers without a promise', async () => {
    const { path } = decisionPath();
    const headers = { 'x-jit-grant': await grant(), 'x-device-posture': await posture('10m') };
    const first = path.authorize(facts(headers));
    expect(first).toBeInstanceOf(Promise); // tokens verified, PDP asked
    const firstVerdict = await first;
    const hit = path.authorize(facts(headers)) as Verdict;
    expect(hit).not.toBeInstanceOf(Promise);
    expect(hit).toEqual(firstVerdict);
  });
});

describe('a PDP error is a 503, never cached', () => {
  it.each(['timeout', 'error', 'bad_answer', 'circuit_open', 'overloaded'] as const)('%s → pdp_unavailable, counted by outcome, asked again next time', async (outcome) => {
    let calls = 0;
    const failing: Pdp = { kind: 'test', evaluate: async () => (calls++, pdpError(outcome, 'down')) };
    const { path, metrics } = decisionPath(failing);
    for (let i = 0; i < 2; i++) {
      const verdict = await path.authorize(facts({}, 'low'));
      expect(verdict).toMatchObject({ allow: false, denial: { reason: 'pdp_unavailable', status: 503 } });
    }
    expect(calls).toBe(2);
    expect((await metrics.pdpRequests.get()).values.find((v) => v.labels.outcome === outcome)?.value).toBe(2);
  });
});
