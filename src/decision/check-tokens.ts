// The pure core of a decision (SPEC "The decision, per request", steps 2, 3 and 5): given the
// request's facts and its verified tokens, the first SPEC reason to refuse it, or undefined.
// No sockets, no clocks (`now` is an argument), no PDP, no cache: the decision path calls these
// on every request, cache hit or not, and they are tested as tables
// (test/unit/decision/check-tokens.test.ts). STYLE: "The pure core is a function".
// Nothing here allocates when a request passes: the cache-hit path stays free of garbage.
import type { DenyReason } from './denial.ts';
import type { RequestFacts } from './authorizer.ts';
import type { Route } from '../routing/route-table.ts';
import { checkGrant, type Grant } from '../tokens/grant.ts';
import { checkPosture, type PostureAssertion } from '../tokens/posture.ts';
import { isRefused, type TokenResult } from '../tokens/token-verifier.ts';

/** What the checks read of a request: RequestFacts satisfies it. */
export interface TokenRequest {
  readonly peer: RequestFacts['peer'];
  readonly route: Pick<Route, 'action' | 'sensitivity'>;
  readonly resource: string;
}

/** The revocations in force, as the checks read them (Revocations satisfies it). */
export interface RevocationLookup {
  readonly full: boolean;
  isRevoked(jti: string, sub: string, iatMs: number, expMs: number): boolean;
}

export interface TokenRules {
  /** grants.maxLifetime: a grant whose exp - iat is longer is refused (grant_ttl_too_long). */
  readonly grantMaxLifetimeMs: number;
  /** posture.maxAge, counted from the assertion's iat. */
  readonly postureMaxAgeMs: number;
  readonly revocations: RevocationLookup;
}

/** Why a request is refused, and the tokens examined before it (the ones its audit line names). */
export interface Refusal {
  readonly reason: DenyReason;
  /** For the audit line (pdp_detail); never shown to clients. */
  readonly detail: string | undefined;
  readonly grant: Grant | undefined;
  readonly posture: PostureAssertion | undefined;
}

function refusal(reason: DenyReason, detail: string | undefined, grant: Grant | undefined, posture: PostureAssertion | undefined): Refusal {
  return { reason, detail, grant, posture };
}

const REVOCATION_FULL = Object.freeze(refusal('revocation_unavailable', 'revocation.maxEntries reached', undefined, undefined));
const GRANT_HEADER_TWICE = Object.freeze(refusal('grant_invalid', undefined, undefined, undefined));
const POSTURE_HEADER_TWICE = Object.freeze(refusal('posture_invalid', undefined, undefined, undefined));
const FLOOR: Readonly<Record<'high' | 'critical', Refusal>> = {
  high: Object.freeze(refusal('grant_required', 'sensitivity high needs a grant', undefined, undefined)),
  critical: Object.freeze(refusal('grant_required', 'sensitivity critical needs a grant', undefined, undefined)),
};

/**
 * What refuses before any token is verified (no JWKS fetch, no PDP): the grant floor, a full
 * revocation store, a token header sent twice. `grantHeader`/`postureHeader` are the raw values.
 */
export function checkFloor(request: TokenRequest, grantHeader: string | string[] | undefined, postureHeader: string | string[] | undefined, revocations: RevocationLookup): Refusal | undefined {
  const { sensitivity } = request.route;
  // SPEC step 2, the grant floor: it comes from the proxy itself, not the policy, so no PDP
  // (embedded or remote) can forget it.
  if (grantHeader === undefined && (sensitivity === 'high' || sensitivity === 'critical')) return FLOOR[sensitivity];
  // A full revocation store cannot take one more revocation without forgetting one: fail closed.
  if (revocations.full) return REVOCATION_FULL;
  // SPEC step 3: a bad token is never ignored, and two of them are a bad token.
  if (Array.isArray(grantHeader)) return GRANT_HEADER_TWICE;
  if (Array.isArray(postureHeader)) return POSTURE_HEADER_TWICE;
  return undefined;
}

/**
 * SPEC step 3, the request-dependent checks of verified tokens, in SPEC reason order: the grant
 * (expiry first, then maxLifetime, subject and cnf, scope), its revocation, the posture
 * assertion (its subject, its age), then the intent. `intent` is readIntent's answer: null when
 * the header is malformed.
 */
export function checkTokens(
  request: TokenRequest,
  grantResult: TokenResult<Grant> | undefined,
  postureResult: TokenResult<PostureAssertion> | undefined,
  intent: string | undefined | null,
  now: number,
  rules: TokenRules,
): Refusal | undefined {
  let grant: Grant | undefined;
  if (grantResult) {
    // An expired grant we had verified still names its jti in the audit log.
    if (isRefused(grantResult)) return refusal(grantResult.problem === 'expired' ? 'grant_expired' : 'grant_invalid', grantResult.detail, grantResult.value, undefined);
    grant = grantResult.value;
    const problem = checkGrant(grant, request.peer, request.route.action, request.resource, now, rules.grantMaxLifetimeMs);
    if (problem) return refusal(problem, undefined, grant, undefined);
    if (rules.revocations.isRevoked(grant.jti, grant.sub, grant.iatMs, grant.expMs)) return refusal('grant_revoked', undefined, grant, undefined);
  }
  let posture: PostureAssertion | undefined;
  if (postureResult) {
    if (isRefused(postureResult)) return refusal(postureResult.problem === 'expired' ? 'posture_stale' : 'posture_invalid', postureResult.detail, grant, postureResult.value);
    posture = postureResult.value;
    const problem = checkPosture(posture, request.peer, rules.postureMaxAgeMs, now);
    if (problem) return refusal(problem, undefined, grant, posture);
  }
  if (intent === null) return refusal('intent_mismatch', 'malformed intent header', grant, posture);
  // SPEC step 3: intent, if the grant names one, must equal the request's.
  if (grant?.intent !== undefined && intent !== grant.intent) return refusal(intent === undefined ? 'intent_required' : 'intent_mismatch', undefined, grant, posture);
  return undefined;
}

/**
 * SPEC step 5, after the PDP answered: the grant may have expired, or been revoked, while it
 * thought. Checked again so a slow PDP cannot stretch a grant past its exp or its revocation.
 */
export function recheckGrant(grant: Grant | undefined, now: number, revocations: RevocationLookup): DenyReason | undefined {
  if (!grant) return undefined;
  if (now >= grant.expMs) return 'grant_expired';
  if (revocations.isRevoked(grant.jti, grant.sub, grant.iatMs, grant.expMs)) return 'grant_revoked';
  return undefined;
}
