// The pure core of a decision (SPEC "The decision, per request", steps 2, 3 and 5) as tables:
// one row per reason, no sockets, no signed tokens: Grant and PostureAssertion values are built
// directly, as the token verifier would hand them over.
import { afterAll, describe, expect, it } from 'vitest';
import { checkFloor, checkTokens, recheckGrant, type TokenRequest, type TokenRules } from '../../../src/decision/check-tokens.ts';
import { Revocations } from '../../../src/decision/revocations.ts';
import type { DenyReason } from '../../../src/decision/denial.ts';
import { parseSpiffeId } from '../../../src/identity/spiffe-id.ts';
import type { PeerIdentity } from '../../../src/identity/peer-verifier.ts';
import { actionMatcher, resourceMatcher } from '../../../src/pdp/patterns.ts';
import type { Sensitivity } from '../../../src/routing/route-table.ts';
import type { Grant } from '../../../src/tokens/grant.ts';
import type { PostureAssertion } from '../../../src/tokens/posture.ts';
import type { TokenResult } from '../../../src/tokens/token-verifier.ts';

const NOW = 1_800_000_000_000;
const MINUTE = 60_000;
const SUPPORT = 'spiffe://example.org/ns/prod/sa/support-bot';
const LEAF = 'leaf-sha256-b64u';

const peer: PeerIdentity = {
  svid: { id: parseSpiffeId(SUPPORT), chain: [], leafSha256Hex: 'ab', leafSha256B64u: LEAF, notAfter: new Date(NOW + 3_600_000) },
  allowed: true,
};

function request(sensitivity: Sensitivity = 'medium'): TokenRequest {
  return { peer, route: { action: 'orders.refund', sensitivity }, resource: 'order:42' };
}

function grant(overrides: Partial<Grant> = {}): Grant {
  return {
    jti: 'g-1',
    iss: 'https://jit.example.org',
    sub: SUPPORT,
    iatMs: NOW - MINUTE,
    expMs: NOW + 10 * MINUTE,
    scope: actionMatcher(['orders.refund']),
    resources: undefined,
    intent: undefined,
    certThumbprint: undefined,
    approver: 'alice',
    justification: undefined,
    claims: {},
    ...overrides,
  };
}

function posture(overrides: Partial<PostureAssertion> = {}): PostureAssertion {
  return { sub: SUPPORT, iatMs: NOW - MINUTE, expMs: NOW + 10 * MINUTE, tier: 'high', posture: { trust: 'high' }, ...overrides };
}

const verified = <T>(value: T): TokenResult<T> => ({ value, expMs: NOW + 10 * MINUTE, ref: 'ref' });

// A real revocation store: jti "revoked" and everything issued to "spiffe://example.org/ns/prod/sa/fired" so far.
const FIRED = 'spiffe://example.org/ns/prod/sa/fired';
const revocations = new Revocations({ sweepIntervalMs: 3_600_000 });
revocations.configure({ maxEntries: 100, maxLifetimeMs: 60 * MINUTE, clockSkewMs: 2_000 });
revocations.revokeJti('revoked', 0, NOW - 2 * MINUTE);
revocations.revokeSub(FIRED, NOW - 30_000);
const full = new Revocations({ sweepIntervalMs: 3_600_000 });
full.configure({ maxEntries: 1, maxLifetimeMs: 60 * MINUTE, clockSkewMs: 2_000 });
full.revokeSub('spiffe://example.org/ns/prod/sa/someone', NOW);
afterAll(() => {
  revocations.stop();
  full.stop();
});

const rules: TokenRules = { grantMaxLifetimeMs: 60 * MINUTE, postureMaxAgeMs: 15 * MINUTE, revocations };

describe('checkFloor: what refuses before any token is verified', () => {
  const rows: { name: string; sensitivity: Sensitivity; grant?: string | string[]; posture?: string | string[]; full?: boolean; reason: DenyReason | undefined; detail?: string }[] = [
    { name: 'high, no grant: the grant floor', sensitivity: 'high', reason: 'grant_required', detail: 'sensitivity high needs a grant' },
    { name: 'critical, no grant: the grant floor', sensitivity: 'critical', posture: 'p', reason: 'grant_required', detail: 'sensitivity critical needs a grant' },
    { name: 'high, no grant, store full: the floor comes first', sensitivity: 'high', full: true, reason: 'grant_required' },
    { name: 'low, no grant: no floor', sensitivity: 'low', reason: undefined },
    { name: 'medium, no grant: no floor', sensitivity: 'medium', reason: undefined },
    { name: 'high with a grant', sensitivity: 'high', grant: 'g', reason: undefined },
    { name: 'a full revocation store', sensitivity: 'high', grant: 'g', full: true, reason: 'revocation_unavailable', detail: 'revocation.maxEntries reached' },
    { name: 'a full revocation store, low route', sensitivity: 'low', full: true, reason: 'revocation_unavailable' },
    { name: 'the grant header twice', sensitivity: 'high', grant: ['g', 'h'], reason: 'grant_invalid' },
    { name: 'the posture header twice', sensitivity: 'low', posture: ['p', 'q'], reason: 'posture_invalid' },
    { name: 'a full store beats a header twice', sensitivity: 'low', grant: ['g', 'h'], full: true, reason: 'revocation_unavailable' },
  ];
  it.each(rows)('$name → $reason', (row) => {
    const refusal = checkFloor(request(row.sensitivity), row.grant, row.posture, row.full ? full : revocations);
    expect(refusal?.reason).toBe(row.reason);
    if (row.detail !== undefined) expect(refusal?.detail).toBe(row.detail);
    // Nothing was verified: no refusal here names a token.
    expect([refusal?.grant, refusal?.posture]).toEqual([undefined, undefined]);
  });

  it('allocates no refusal: the same frozen value every time', () => {
    expect(checkFloor(request('high'), undefined, undefined, revocations)).toBe(checkFloor(request('high'), undefined, undefined, revocations));
    expect(Object.isFrozen(checkFloor(request('low'), ['a', 'b'], undefined, revocations))).toBe(true);
  });
});

describe('checkTokens: the request-dependent checks of verified tokens, in SPEC order', () => {
  interface Row {
    name: string;
    grant?: TokenResult<Grant>;
    posture?: TokenResult<PostureAssertion>;
    intent?: string | null;
    reason: DenyReason | undefined;
    detail?: string;
  }
  const rows: Row[] = [
    { name: 'no tokens at all', reason: undefined },
    { name: 'a good grant', grant: verified(grant()), reason: undefined },
    { name: 'a good grant and posture', grant: verified(grant()), posture: verified(posture()), reason: undefined },
    { name: 'a grant that did not verify', grant: { problem: 'invalid', detail: 'signature verification failed' }, reason: 'grant_invalid', detail: 'signature verification failed' },
    { name: 'a grant refused as expired by the verifier', grant: { problem: 'expired', detail: 'token has expired', value: grant() }, reason: 'grant_expired', detail: 'token has expired' },
    { name: 'a grant at its exp (the millisecond of exp is too late)', grant: verified(grant({ expMs: NOW })), reason: 'grant_expired' },
    { name: 'a grant one millisecond before exp', grant: verified(grant({ expMs: NOW + 1 })), reason: undefined },
    { name: 'a grant longer than grants.maxLifetime', grant: verified(grant({ iatMs: NOW - MINUTE, expMs: NOW + 60 * MINUTE })), reason: 'grant_ttl_too_long' },
    { name: 'a grant of exactly grants.maxLifetime', grant: verified(grant({ iatMs: NOW - MINUTE, expMs: NOW + 59 * MINUTE })), reason: undefined },
    { name: 'a grant issued to another workload', grant: verified(grant({ sub: 'spiffe://example.org/ns/prod/sa/billing' })), reason: 'grant_subject_mismatch' },
    { name: 'a grant bound (cnf) to another certificate', grant: verified(grant({ certThumbprint: 'other-leaf' })), reason: 'grant_subject_mismatch' },
    { name: 'a grant bound (cnf) to this certificate', grant: verified(grant({ certThumbprint: LEAF })), reason: undefined },
    { name: 'a grant for another action', grant: verified(grant({ scope: actionMatcher(['orders.read']) })), reason: 'grant_scope' },
    { name: 'a grant for other resources', grant: verified(grant({ resources: resourceMatcher(['order:7']) })), reason: 'grant_scope' },
    { name: 'a grant for this resource', grant: verified(grant({ resources: resourceMatcher(['order:*']) })), reason: undefined },
    { name: 'a revoked jti', grant: verified(grant({ jti: 'revoked' })), reason: 'grant_revoked' },
    { name: 'expired and revoked: expiry first', grant: verified(grant({ jti: 'revoked', expMs: NOW - 1 })), reason: 'grant_expired' },
    { name: 'out of scope and revoked: scope first', grant: verified(grant({ jti: 'revoked', scope: actionMatcher(['orders.read']) })), reason: 'grant_scope' },
    { name: 'a posture assertion that did not verify', posture: { problem: 'invalid', detail: 'unknown issuer' }, reason: 'posture_invalid', detail: 'unknown issuer' },
    { name: 'a posture assertion refused as expired', posture: { problem: 'expired', detail: 'token has expired' }, reason: 'posture_stale' },
    { name: 'a posture assertion about another workload', posture: verified(posture({ sub: 'spiffe://example.org/ns/prod/sa/billing' })), reason: 'posture_invalid' },
    { name: 'a posture assertion past its exp', posture: verified(posture({ expMs: NOW })), reason: 'posture_stale' },
    { name: 'a posture assertion older than posture.maxAge', posture: verified(posture({ iatMs: NOW - 15 * MINUTE - 1 })), reason: 'posture_stale' },
    { name: 'a posture assertion exactly posture.maxAge old', posture: verified(posture({ iatMs: NOW - 15 * MINUTE })), reason: undefined },
    { name: 'a bad grant and a bad posture: the grant first', grant: verified(grant({ scope: actionMatcher(['x']) })), posture: verified(posture({ expMs: NOW })), reason: 'grant_scope' },
    { name: 'a malformed intent header', intent: null, reason: 'intent_mismatch', detail: 'malformed intent header' },
    { name: 'a grant naming an intent, none declared', grant: verified(grant({ intent: 'refund' })), reason: 'intent_required' },
    { name: 'a grant naming an intent, another declared', grant: verified(grant({ intent: 'refund' })), intent: 'cleanup', reason: 'intent_mismatch' },
    { name: 'a grant naming an intent, the same declared', grant: verified(grant({ intent: 'refund' })), intent: 'refund', reason: undefined },
    { name: 'an intent declared, the grant names none', grant: verified(grant()), intent: 'refund', reason: undefined },
    { name: 'a stale posture and a missing intent: the posture first', grant: verified(grant({ intent: 'refund' })), posture: verified(posture({ expMs: NOW })), reason: 'posture_stale' },
  ];
  it.each(rows)('$name → $reason', (row) => {
    const refusal = checkTokens(request(), row.grant, row.posture, row.intent, NOW, rules);
    expect(refusal?.reason).toBe(row.reason);
    if (row.detail !== undefined) expect(refusal?.detail).toBe(row.detail);
  });

  it('a revoked subject: a grant issued before the revocation is refused, one issued later (past clockSkew) is not', () => {
    const firedPeer: PeerIdentity = { ...peer, svid: { ...peer.svid, id: parseSpiffeId(FIRED) } };
    const asFired: TokenRequest = { ...request(), peer: firedPeer };
    expect(checkTokens(asFired, verified(grant({ sub: FIRED, iatMs: NOW - MINUTE })), undefined, undefined, NOW, rules)?.reason).toBe('grant_revoked');
    expect(checkTokens(asFired, verified(grant({ sub: FIRED, iatMs: NOW - 20_000 })), undefined, undefined, NOW, rules)).toBeUndefined();
  });

  it('names the tokens examined before the refusal, as the audit line does', () => {
    const g = grant({ scope: actionMatcher(['orders.read']) });
    const p = posture();
    // A grant refusal: the posture assertion was not looked at yet.
    expect(checkTokens(request(), verified(g), verified(p), undefined, NOW, rules)).toEqual({ reason: 'grant_scope', detail: undefined, grant: g, posture: undefined });
    // An expired grant the verifier had seen still names its jti.
    const late = grant();
    expect(checkTokens(request(), { problem: 'expired', detail: 'token has expired', value: late }, verified(p), undefined, NOW, rules)?.grant).toBe(late);
    // A posture or intent refusal names both.
    const stale = posture({ expMs: NOW });
    const good = grant({ intent: 'refund' });
    expect(checkTokens(request(), verified(good), verified(stale), undefined, NOW, rules)).toMatchObject({ reason: 'posture_stale', grant: good, posture: stale });
    expect(checkTokens(request(), verified(good), verified(p), 'other', NOW, rules)).toMatchObject({ reason: 'intent_mismatch', grant: good, posture: p });
  });
});

describe('recheckGrant: after the PDP answered', () => {
  const rows: { name: string; grant: Grant | undefined; now: number; reason: DenyReason | undefined }[] = [
    { name: 'no grant', grant: undefined, now: NOW, reason: undefined },
    { name: 'a grant still valid', grant: grant(), now: NOW, reason: undefined },
    { name: 'a grant that expired while the PDP thought', grant: grant({ expMs: NOW + 100 }), now: NOW + 100, reason: 'grant_expired' },
    { name: 'a grant revoked while the PDP thought', grant: grant({ jti: 'revoked' }), now: NOW, reason: 'grant_revoked' },
    { name: 'expired and revoked: expiry first', grant: grant({ jti: 'revoked', expMs: NOW }), now: NOW, reason: 'grant_expired' },
  ];
  it.each(rows)('$name → $reason', (row) => {
    expect(recheckGrant(row.grant, row.now, revocations)).toBe(row.reason);
  });
});
