// The TTL view (SPEC step 4, "Admin listener", issue 14): for each allow the decision path stores,
// which of min(PDP ttl, cache.allowTtl, route cacheTtl, grant exp, posture expiry) set its
// lifetime, counted per route in the cache's report and in portcullis_cache_ttl_bound_total.
// Real signed tokens and the embedded PDP, driven through Authorizer.authorize.
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { createLocalJWKSet, exportJWK } from 'jose';
import { DecisionPath } from '../../../src/decision/decision-path.ts';
import { DecisionCache, TTL_BOUNDS, type TtlBound } from '../../../src/decision/decision-cache.ts';
import { Revocations } from '../../../src/decision/revocations.ts';
import type { RequestFacts } from '../../../src/decision/authorizer.ts';
import { EmbeddedPdp, policySchema } from '../../../src/pdp/embedded-policy.ts';
import { mintGrant, mintPosture } from '../../../src/cli/mint.ts';
import { parseSpiffeId } from '../../../src/identity/spiffe-id.ts';
import type { PeerIdentity } from '../../../src/identity/peer-verifier.ts';
import type { Route } from '../../../src/routing/route-table.ts';
import { shapeGrant } from '../../../src/tokens/grant.ts';
import { shapePosture } from '../../../src/tokens/posture.ts';
import { TokenVerifier } from '../../../src/tokens/token-verifier.ts';
import { createMetrics } from '../../../src/telemetry/metrics.ts';
import { memoryAuditLog } from '../../../src/telemetry/audit.ts';

const SUPPORT = 'spiffe://example.org/ns/prod/sa/support-bot';
const OWN = 'spiffe://example.org/ns/prod/sa/orders-api';
const JIT = 'https://jit.example.org';
const POSTURE = 'https://posture.example.org';

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const keys = createLocalJWKSet({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' }] });
const peer: PeerIdentity = { svid: { id: parseSpiffeId(SUPPORT), chain: [], leafSha256Hex: 'ab', leafSha256B64u: 'leaf', notAfter: new Date(Date.now() + 3_600_000) }, allowed: true };

const stores: Revocations[] = [];
afterAll(() => stores.forEach((r) => r.stop()));

function setup(o: { ruleTtl?: string; allowTtlMs?: number; denyTtlMs?: number; postureMaxAgeMs?: number; effect?: 'allow' | 'deny' } = {}) {
  const metrics = createMetrics({ defaultMetrics: false });
  const verifier = <T>(shape: (claims: Parameters<typeof shapeGrant>[0], token: string, now: number) => T, iss: string, audience: string[] | undefined) =>
    new TokenVerifier({ shape, issuers: new Map([[iss, keys]]), audience, clockSkewMs: 2_000, maxTokenBytes: 8192, requiredClaims: ['exp', 'iat', 'sub'], cacheEntries: 100 });
  const revocations = new Revocations({ sweepIntervalMs: 3_600_000 });
  stores.push(revocations);
  const cache = new DecisionCache(100, metrics);
  const pdp = new EmbeddedPdp(policySchema.parse({ rules: [{ id: 'r', effect: o.effect ?? 'allow', subjects: [SUPPORT], actions: ['orders.*'], ...(o.ruleTtl ? { ttl: o.ruleTtl } : {}) }] }));
  const path = new DecisionPath({
    generation: 1, pdp, grants: verifier(shapeGrant, JIT, [OWN]), postures: verifier(shapePosture, POSTURE, undefined),
    grantHeader: 'x-jit-grant', postureHeader: 'x-device-posture', intentHeader: 'x-intent',
    postureMaxAgeMs: o.postureMaxAgeMs ?? 3_600_000, grantMaxLifetimeMs: 24 * 3_600_000,
    allowTtlMs: o.allowTtlMs ?? 30_000, denyTtlMs: o.denyTtlMs ?? 2_000, pdpTimeoutMs: 100,
    cache, revocations, metrics, audit: memoryAuditLog(),
  });
  return { path, cache, metrics };
}

function facts(headers: Record<string, string>, cacheTtlMs?: number, name = 'refund'): RequestFacts {
  const route: Route = { name, privileged: true, action: 'orders.refund', sensitivity: 'low', cacheTtlMs, mode: 'enforce', resource: [], jsonrpc: false };
  return { peer, route, resource: 'order:42', method: 'POST', headers, requestId: 'r', path: '/', peerAddress: '127.0.0.1', peerPort: 1 };
}

const grant = (ttl: string) => mintGrant({ key: privateKey, kid: 'k1', iss: JIT, sub: SUPPORT, aud: OWN, scope: 'orders.refund', ttl, jti: `g-${ttl}` });
const posture = (ttl: string) => mintPosture({ key: privateKey, kid: 'k1', iss: POSTURE, sub: SUPPORT, trust: 'high', ttl });

async function boundsOf(metrics: ReturnType<typeof createMetrics>, route: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await metrics.cacheTtlBound.counter.get()).values) if (v.labels.route === route) out[String(v.labels.bound)] = v.value;
  return out;
}

const only = (bound: TtlBound): Record<TtlBound, number> => Object.fromEntries(TTL_BOUNDS.map((b) => [b, b === bound ? 1 : 0])) as Record<TtlBound, number>;

describe('which bound set a cached allow\'s lifetime', () => {
  const cases: [TtlBound, Parameters<typeof setup>[0], () => Promise<Record<string, string>>, number | undefined][] = [
    ['pdp', { ruleTtl: '5s' }, async () => ({ 'x-jit-grant': await grant('10m') }), undefined],
    ['allow_ttl', {}, async () => ({ 'x-jit-grant': await grant('10m'), 'x-device-posture': await posture('10m') }), 60_000],
    ['route_ttl', { ruleTtl: '1m' }, async () => ({ 'x-jit-grant': await grant('10m') }), 10_000],
    ['grant_exp', {}, async () => ({ 'x-jit-grant': await grant('20s') }), undefined],
    ['posture', {}, async () => ({ 'x-jit-grant': await grant('10m'), 'x-device-posture': await posture('15s') }), undefined],
  ];

  it.each(cases)('%s', async (bound, options, headers, cacheTtlMs) => {
    const { path, cache, metrics } = setup(options);
    const h = await headers();
    expect(await path.authorize(facts(h, cacheTtlMs))).toMatchObject({ allow: true });
    // A hit stores nothing new: one allow stored, one bound counted.
    expect(path.authorize(facts(h, cacheTtlMs))).toMatchObject({ allow: true });
    const [report] = cache.routeReport(['refund']);
    expect(report).toEqual({ route: 'refund', entries: 1, hits: 1, misses: 1, hitRatio: 0.5, bounds: only(bound) });
    expect(await boundsOf(metrics, 'refund')).toEqual({ [bound]: 1 });
  });

  it('posture maxAge (iat + posture.maxAge before its exp) is the posture bound too', async () => {
    const { path, cache } = setup({ postureMaxAgeMs: 12_000 });
    await path.authorize(facts({ 'x-device-posture': await posture('10m') }));
    expect(cache.routeReport(['refund'])[0]!.bounds).toEqual(only('posture'));
  });

  it('denies and allows that are not stored (PDP ttl 0, cache off) count no bound', async () => {
    const denying = setup({ effect: 'deny' });
    expect(await denying.path.authorize(facts({ 'x-jit-grant': await grant('10m') }))).toMatchObject({ allow: false });
    expect(denying.cache.routeReport(['refund'])[0]).toMatchObject({ entries: 1, misses: 1, bounds: { pdp: 0, allow_ttl: 0, route_ttl: 0, grant_exp: 0, posture: 0 } });
    expect(await boundsOf(denying.metrics, 'refund')).toEqual({});
    const zero = setup({ ruleTtl: '0s' });
    await zero.path.authorize(facts({}));
    expect(zero.cache.routeReport(['refund'])[0]).toMatchObject({ entries: 0, bounds: { pdp: 0, allow_ttl: 0, route_ttl: 0, grant_exp: 0, posture: 0 } });
  });

  it('counts per route, and a route never decided reports zeros', async () => {
    const { path, cache } = setup();
    await path.authorize(facts({}, undefined, 'a'));
    await path.authorize(facts({}, 5_000, 'b'));
    expect(cache.routeReport(['a', 'b', 'c']).map((r) => [r.route, r.entries, r.bounds.allow_ttl, r.bounds.route_ttl])).toEqual([['a', 1, 1, 0], ['b', 1, 0, 1], ['c', 0, 0, 0]]);
  });
});
