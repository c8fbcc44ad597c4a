// One decision without a request (SPEC "Policy tests", `portcullis policy test` and `policy
// explain`): a case names the subject, action, resource, sensitivity, and the tokens as already
// verified (a grant's lifetime and claims, a posture tier, an intent). It runs through the very
// code the proxy runs, in the proxy's order: checkFloor (the grant floor), checkTokens (the grant's
// lifetime, scope, the posture's age, the intent) and the embedded PDP (rules, then the tier,
// maxGrantTtl included). Only signatures and sockets are left out: there are none to check.
import type { DenyReason } from './denial.ts';
import { checkFloor, checkTokens, type RevocationLookup, type TokenRequest } from './check-tokens.ts';
import type { EmbeddedPdp, PolicyExplanation } from '../pdp/embedded-policy.ts';
import type { PdpInput } from '../pdp/pdp.ts';
import { parseSpiffeId } from '../identity/spiffe-id.ts';
import type { PeerIdentity } from '../identity/peer-verifier.ts';
import type { Sensitivity } from '../routing/route-table.ts';
import { shapeGrant } from '../tokens/grant.ts';
import { shapePosture, type TrustTier } from '../tokens/posture.ts';
import type { VerifiedToken } from '../tokens/token-verifier.ts';

export interface OfflineCase {
  readonly subject: string;
  readonly action: string;
  readonly resource: string;
  readonly sensitivity: Sensitivity;
  /** A verified grant issued to the subject now: its lifetime and, optionally, its claims. */
  readonly grant?: { readonly ttlMs: number; readonly scope?: string; readonly resources?: readonly string[]; readonly intent?: string };
  readonly posture?: TrustTier;
  readonly intent?: string;
}

export interface OfflineRules {
  /** grants.maxLifetime (default 24h, as the config's). */
  readonly grantMaxLifetimeMs: number;
  /** posture.maxAge: a case's posture assertion is issued now and lives this long. */
  readonly postureMaxAgeMs: number;
}

export interface OfflineDecision {
  readonly decision: 'allow' | 'deny';
  readonly reason: DenyReason | 'allowed';
  /** Which stage decided: the proxy's grant floor, the token checks, or the policy. */
  readonly stage: 'floor' | 'tokens' | 'policy';
  /** The rule or requirement that decided (`allow rule support-refunds`, `tier high needs ...`). */
  readonly detail: string;
  /** The policy's reading, when the request got as far as the policy. */
  readonly explanation: PolicyExplanation | undefined;
}

/** A case has no revocations: nothing was revoked in it. */
const NONE_REVOKED: RevocationLookup = { full: false, freshUntilMs: Infinity, isRevoked: () => false, isPostureRevoked: () => false };

/** Throws for a subject that is not a SPIFFE ID (callers validate cases first and name the key). */
export function decideOffline(pdp: EmbeddedPdp, c: OfflineCase, rules: OfflineRules, now = Date.now()): OfflineDecision {
  const id = parseSpiffeId(c.subject);
  const peer: PeerIdentity = { svid: { id, chain: [], leafSha256Hex: '', leafSha256B64u: '', notAfter: new Date(now + 3_600_000) }, allowed: true };
  const request: TokenRequest = { peer, route: { action: c.action, sensitivity: c.sensitivity }, resource: c.resource };
  const token = <T>(value: T, expMs: number): VerifiedToken<T> => ({ value, expMs, ref: 'offline' });
  const iat = Math.floor(now / 1000);
  // Shaped from claims by the proxy's own shapers, so scope and resource patterns mean what they mean there.
  const grant = c.grant
    ? shapeGrant({ iss: 'policy-test', sub: c.subject, jti: 'policy-test', iat, exp: iat + c.grant.ttlMs / 1000, scope: c.grant.scope ?? c.action, ...(c.grant.resources ? { resources: [...c.grant.resources] } : {}), ...(c.grant.intent !== undefined ? { intent: c.grant.intent } : {}) }, undefined, now)
    : undefined;
  const posture = c.posture ? shapePosture({ sub: c.subject, iat, exp: iat + rules.postureMaxAgeMs / 1000, posture: { trust: c.posture } }, undefined, now) : undefined;

  const floor = checkFloor(request, grant ? 'present' : undefined, posture ? 'present' : undefined, NONE_REVOKED, now);
  if (floor) return { decision: 'deny', reason: floor.reason, stage: 'floor', detail: floor.detail ?? floor.reason, explanation: undefined };
  const refused = checkTokens(request, grant && token(grant, grant.expMs), posture && token(posture, posture.expMs), c.intent, now, { ...rules, revocations: NONE_REVOKED });
  if (refused) return { decision: 'deny', reason: refused.reason, stage: 'tokens', detail: refused.detail ?? tokenDetail(refused.reason), explanation: undefined };

  const input: PdpInput = { subject: c.subject, posture, action: c.action, method: 'POST', resource: c.resource, route: 'policy-test', sensitivity: c.sensitivity, grant, intent: c.intent, requestId: 'policy-test', nowMs: now };
  const explanation = pdp.explain(input);
  const { result } = explanation;
  // The embedded PDP answers at once; its errors (none expected) would be a bug, and deny.
  if (result.kind === 'allow') return { decision: 'allow', reason: 'allowed', stage: 'policy', detail: result.detail ?? 'allowed', explanation };
  if (result.kind === 'deny') return { decision: 'deny', reason: result.reason, stage: 'policy', detail: result.detail ?? result.reason, explanation };
  return { decision: 'deny', reason: 'pdp_unavailable', stage: 'policy', detail: `${result.outcome}: ${result.detail}`, explanation };
}

/** What a token check refused, in words (checkTokens gives reasons; the detail is for a person). */
function tokenDetail(reason: DenyReason): string {
  switch (reason) {
    case 'grant_ttl_too_long':
      return 'the grant lives longer than grants.maxLifetime';
    case 'grant_scope':
      return "the grant's scope or resources do not cover this action or resource";
    case 'posture_stale':
      return 'the posture assertion is older than posture.maxAge';
    case 'intent_required':
      return 'the grant names an intent and the request declares none';
    case 'intent_mismatch':
      return "the declared intent is not the grant's";
    default:
      return reason;
  }
}
