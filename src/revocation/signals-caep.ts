// What a CAEP event means here (SPEC "Shared Signals receiver"; OpenID CAEP 1.0 section 3,
// subject identifiers of RFC 9493): session-revoked and credential-change revoke the subject
// (`sub_id` of format `uri` with a SPIFFE ID) or the grant (`sub_id` of format `jwt_id`);
// device-compliance-change to `not-compliant` revokes the subject's posture. Every other event
// type is accepted and counted, never applied. A failure is a value with RFC 8935's `err`.
import { parseEntry, type RevocationEntry } from './entry.ts';
import type { SetRefusal } from './signals-set.ts';

/** CAEP 1.0 section 3: the base URI of its event types. */
const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';

/** The events Portcullis acts on, by URI; their short names are the metric's `event` label. */
export const CAEP_EVENTS = {
  [`${CAEP}session-revoked`]: 'session-revoked',
  [`${CAEP}credential-change`]: 'credential-change',
  [`${CAEP}device-compliance-change`]: 'device-compliance-change',
} as const;

export type SignalEvent = (typeof CAEP_EVENTS)[keyof typeof CAEP_EVENTS] | 'other';
export const SIGNAL_EVENTS: readonly SignalEvent[] = ['session-revoked', 'credential-change', 'device-compliance-change', 'other'];

export function eventName(uri: string): SignalEvent {
  return Object.hasOwn(CAEP_EVENTS, uri) ? CAEP_EVENTS[uri as keyof typeof CAEP_EVENTS] : 'other';
}

/** What an accepted event does: an entry to publish, or nothing (accepted and counted). */
export type Mapped = { readonly ok: true; readonly entry: RevocationEntry | undefined } | SetRefusal;

const invalid = (description: string): SetRefusal => ({ ok: false, err: 'invalid_request', description });

const CHANGE_TYPES = ['create', 'revoke', 'update', 'delete'];
const COMPLIANCE = ['compliant', 'not-compliant'];

/** CAEP 1.0's required event claims: an event that does not carry them is invalid_request (RFC 8935 2.4). */
function payloadProblem(event: SignalEvent, payload: Record<string, unknown>): string | undefined {
  if (event === 'credential-change') {
    if (typeof payload.credential_type !== 'string' || payload.credential_type === '') return 'credential-change: credential_type must be a string';
    if (typeof payload.change_type !== 'string' || !CHANGE_TYPES.includes(payload.change_type)) return `credential-change: change_type must be one of ${CHANGE_TYPES.join(', ')}`;
  }
  if (event === 'device-compliance-change') {
    for (const key of ['previous_status', 'current_status'] as const) {
      if (typeof payload[key] !== 'string' || !COMPLIANCE.includes(payload[key])) return `device-compliance-change: ${key} must be "compliant" or "not-compliant"`;
    }
  }
  return undefined;
}

/**
 * The entry an event asks for. A subject Portcullis cannot name (an email, an `iss_sub`, a
 * complex subject, a URI that is not a SPIFFE ID) is refused, not accepted silently: the
 * transmitter must learn that nothing was revoked here.
 */
export function mapEvent(event: SignalEvent, payload: Record<string, unknown>, subId: Record<string, unknown>, transmitter: string): Mapped {
  if (event === 'other') return { ok: true, entry: undefined };
  const problem = payloadProblem(event, payload);
  if (problem !== undefined) return invalid(problem);
  if (event === 'device-compliance-change' && payload.current_status !== 'not-compliant') return { ok: true, entry: undefined };
  const base = { reason: `caep ${event}`, by: transmitter.slice(0, 256) };
  let fields: Record<string, unknown>;
  if (subId.format === 'uri') {
    if (typeof subId.uri !== 'string') return invalid('sub_id: format "uri" needs a "uri" string');
    if (!subId.uri.startsWith('spiffe://')) return invalid('sub_id: the uri is not a SPIFFE ID (Portcullis revokes SPIFFE subjects)');
    fields = event === 'device-compliance-change' ? { posture_sub: subId.uri } : { sub: subId.uri };
  } else if (subId.format === 'jwt_id' && event !== 'device-compliance-change') {
    if (typeof subId.iss !== 'string' || subId.iss === '') return invalid('sub_id: format "jwt_id" needs an "iss" string');
    if (typeof subId.jti !== 'string' || subId.jti === '') return invalid('sub_id: format "jwt_id" needs a "jti" string');
    fields = { jti: subId.jti };
  } else {
    const expected = event === 'device-compliance-change' ? 'format "uri" with a SPIFFE ID' : 'format "uri" with a SPIFFE ID, or "jwt_id"';
    return invalid(`sub_id: format ${JSON.stringify(subId.format)} names nothing Portcullis can revoke for ${event} (expected ${expected})`);
  }
  // The same parser as the stream and the admin API: one meaning, one set of limits.
  const parsed = parseEntry({ ...fields, ...base });
  if (!parsed.ok) return invalid(`sub_id: ${parsed.problem}`);
  return { ok: true, entry: parsed.entry };
}
