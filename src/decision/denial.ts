// The SPEC "Responses" reasons: one string-literal union shared by responses, metrics and audit.
export type DenyReason =
  | 'peer_not_allowed'
  | 'no_route'
  | 'bad_path'
  | 'grant_required'
  | 'grant_invalid'
  | 'grant_expired'
  | 'grant_revoked'
  | 'grant_subject_mismatch'
  | 'grant_scope'
  | 'grant_ttl_too_long'
  | 'posture_required'
  | 'posture_invalid'
  | 'posture_stale'
  | 'posture_revoked'
  | 'posture_insufficient'
  | 'intent_required'
  | 'intent_mismatch'
  | 'policy_denied'
  | 'pdp_unavailable'
  | 'revocation_unavailable'
  | 'upstream_unavailable'
  | 'upstream_timeout'
  // Beyond SPEC's list, for requests HTTP itself refuses before any policy runs.
  | 'bad_request';

export interface Denial {
  readonly reason: DenyReason;
  readonly status: number;
  /** A short, user-facing sentence; never the policy's internals. */
  readonly error: string;
}

const TABLE: Record<DenyReason, [number, string]> = {
  peer_not_allowed: [403, 'the calling workload is not allowed to use this service'],
  no_route: [403, 'no route matches this request'],
  bad_path: [400, 'the request path is not acceptable'],
  grant_required: [401, 'this route needs a grant'],
  grant_invalid: [401, 'the grant is malformed or cannot be verified'],
  grant_expired: [401, 'the grant has expired'],
  grant_revoked: [403, 'the grant has been revoked'],
  grant_subject_mismatch: [403, 'the grant was issued to another workload'],
  grant_scope: [403, 'the grant does not cover this action or resource'],
  grant_ttl_too_long: [403, 'the grant lives longer than this route allows'],
  posture_required: [401, 'this route needs a posture assertion'],
  posture_invalid: [401, 'the posture assertion is malformed or cannot be verified'],
  posture_stale: [401, 'the posture assertion is too old'],
  posture_revoked: [401, 'the posture assertion has been revoked'],
  posture_insufficient: [403, 'the device posture is not trusted enough for this route'],
  intent_required: [403, 'this route needs a declared intent'],
  intent_mismatch: [403, "the declared intent does not match the grant's"],
  policy_denied: [403, 'the policy does not allow this request'],
  pdp_unavailable: [503, 'the policy decision point is unavailable'],
  // Never cached: a local refusal, lifted as soon as the revocation store has room again.
  revocation_unavailable: [503, 'revocations cannot be checked right now'],
  upstream_unavailable: [502, 'the service is unavailable'],
  upstream_timeout: [504, 'the service did not answer in time'],
  bad_request: [400, 'the request is malformed'],
};

const DENIALS = new Map<DenyReason, Denial>(
  (Object.entries(TABLE) as [DenyReason, [number, string]][]).map(([reason, [status, error]]) => [reason, Object.freeze({ reason, status, error })]),
);

/** The shared, frozen Denial for a reason (no allocation per request). */
export function denial(reason: DenyReason): Denial {
  return DENIALS.get(reason)!;
}

/**
 * A `bad_request` refusal with a status of its own (413, 415, 408, 417, 431…): the same SPEC
 * reason, the status and message saying which limit or rule it was.
 */
export function badRequest(status: number, error: string): Denial {
  return Object.freeze({ ...denial('bad_request'), status, error });
}
