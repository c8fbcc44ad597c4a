// decideOffline (what `policy test` and `policy explain` run) against the decision path itself:
// over a grid of subjects, sensitivities, grants, postures and intents, the offline decision and
// reason are exactly those DecisionPath.authorize gives for real signed tokens. This is what makes
// a passing policy test a promise about the proxy, not about a second implementation.
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { createLocalJWKSet, exportJWK } from 'jose';
import { DecisionPath } from '../../../src/decision/decision-path.ts';
import { DecisionCache } from '../../../src/decision/decision-cache.ts';
import { Revocations } from '../../../src/decision/revocations.ts';
import { decideOffline, type OfflineCase } from '../../../src/decision/offline-decision.ts';
import type { RequestFacts, Verdict } from '../../../src/decision/authorizer.ts';
import { EmbeddedPdp, policySchema } from '../../../src/pdp/embedded-policy.ts';
import { mintGrant, mintPosture } from '../../../src/cli/mint.ts';
import { parseSpiffeId } from '../../../src/identity/spiffe-id.ts';
import type { Route, Sensitivity } from '../../../src/routing/route-table.ts';
import { shapeGrant } from '../../../src/tokens/grant.ts';
import { shapePosture } from '../../../src/tokens/posture.ts';
import { TokenVerifier } from '../../../src/tokens/token-verifier.ts';
import { createMetrics } from '../../../src/telemetry/metrics.ts';
import { memoryAuditLog } from '../../../src/telemetry/audit.ts';

const OWN = 'spiffe://example.org/ns/prod/sa/orders-api';
const JIT = 'https://jit.example.org';
const POSTURE = 'https://posture.example.org';
const RULES = { grantMaxLifetimeMs: 30 * 60_000, postureMaxAgeMs: 5 * 60_000 };
const policy = new EmbeddedPdp(
  policySchema.parse({
    tiers: { medium: { posture: 'medium' }, high: { grant: true, posture: 'high', maxGrantTtl: '15m' }, critical: { grant: true, posture: 'high', intent: true, maxGrantTtl: '5m' } },
    rules: [
      { id: 'support-refunds', effect: 'allow', subjects: ['spiffe://example.org/ns/prod/sa/support-*'], actions: ['orders.refund'], resources: ['order:*'] },
      { id: 'no-13', effect: 'deny', actions: ['orders.*'], resources: ['order:13'] },
    ],
  }),
);

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const keys = createLocalJWKSet({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' }] });
const store = new Revocations({ sweepIntervalMs: 3_600_000 });
afterAll(() => store.stop());
const metrics = createMetrics({ defaultMetrics: false });
const verifier = <T>(shape: (claims: Parameters<typeof shapeGrant>[0], token: string, now: number) => T, iss: string, audience: string[] | undefined) =>
  new TokenVerifier({ shape, issuers: new Map([[iss, keys]]), audience, clockSkewMs: 2_000, maxTokenBytes: 8192, requiredClaims: ['exp', 'iat', 'sub'], cacheEntries: 1000 });
const path = new DecisionPath({
  generation: 1, pdp: policy, grants: verifier(shapeGrant, JIT, [OWN]), postures: verifier(shapePosture, POSTURE, undefined),
  grantHeader: 'x-jit-grant', postureHeader: 'x-device-posture', intentHeader: 'x-intent',
  postureMaxAgeMs: RULES.postureMaxAgeMs, grantMaxLifetimeMs: RULES.grantMaxLifetimeMs, allowTtlMs: 30_000, denyTtlMs: 2_000, pdpTimeoutMs: 1000,
  cache: new DecisionCache(0, metrics), revocations: store, metrics, audit: memoryAuditLog(),
});

let jti = 0;
async function online(c: OfflineCase): Promise<Verdict> {
  const headers: Record<string, string> = {};
  if (c.grant) headers['x-jit-grant'] = await mintGrant({ key: privateKey, kid: 'k1', iss: JIT, sub: c.subject, aud: OWN, scope: c.grant.scope ?? c.action, intent: c.grant.intent, ttl: `${c.grant.ttlMs / 1000}s`, jti: `g-${++jti}` });
  if (c.posture) headers['x-device-posture'] = await mintPosture({ key: privateKey, kid: 'k1', iss: POSTURE, sub: c.subject, trust: c.posture, ttl: `${RULES.postureMaxAgeMs / 1000}s` });
  if (c.intent !== undefined) headers['x-intent'] = c.intent;
  const route: Route = { name: `r-${c.sensitivity}`, privileged: true, action: c.action, sensitivity: c.sensitivity, cacheTtlMs: undefined, mode: 'enforce', resource: [], jsonrpc: false };
  const peer = { svid: { id: parseSpiffeId(c.subject), chain: [], leafSha256Hex: '', leafSha256B64u: '', notAfter: new Date(Date.now() + 3_600_000) }, allowed: true };
  const facts: RequestFacts = { peer, route, resource: c.resource, method: 'POST', headers, requestId: 'r', path: '/', peerAddress: '127.0.0.1', peerPort: 1 };
  return path.authorize(facts);
}

const grid: OfflineCase[] = [];
for (const subject of ['spiffe://example.org/ns/prod/sa/support-bot', 'spiffe://example.org/ns/prod/sa/billing'])
  for (const resource of ['order:42', 'order:13'])
    for (const sensitivity of ['low', 'medium', 'high', 'critical'] as Sensitivity[])
      for (const grant of [undefined, { ttlMs: 300_000 }, { ttlMs: 600_000, intent: 'INC-1' }, { ttlMs: 3_600_000 }, { ttlMs: 600_000, scope: 'orders.read' }])
        for (const posture of [undefined, 'medium', 'high'] as const)
          for (const intent of [undefined, 'INC-1', 'INC-2'])
            grid.push({ subject, action: 'orders.refund', resource, sensitivity, grant, posture, intent });

describe('decideOffline decides as DecisionPath does', () => {
  it(`on every one of ${grid.length} cases`, async () => {
    const mismatches: string[] = [];
    const reasons = new Set<string>();
    for (const c of grid) {
      const offline = decideOffline(policy, c, RULES);
      const verdict = await online(c);
      const got = verdict.allow ? 'allowed' : verdict.denial.reason;
      reasons.add(got);
      if (offline.reason !== got) mismatches.push(`${JSON.stringify(c)}: offline ${offline.reason}, proxy ${got}`);
    }
    expect(mismatches).toEqual([]);
    // The grid reaches every stage: the floor, the token checks, the rules and each tier requirement.
    expect([...reasons].sort()).toEqual(['allowed', 'grant_required', 'grant_scope', 'grant_ttl_too_long', 'intent_mismatch', 'intent_required', 'policy_denied', 'posture_insufficient', 'posture_required']);
  });
});
