// Validating one Security Event Token (RFC 8417, as SSF 1.0 profiles it) pushed to the Shared
// Signals receiver (SPEC "Shared Signals receiver"): a JWS with `typ: secevent+jwt`, signed with
// an asymmetric algorithm by a key of the transmitter its `iss` names, that transmitter's `aud`,
// an `iat` no older than 10 minutes, a `jti`, a top-level `sub_id`, exactly one event, and no
// `sub` or `exp` (SSF 1.0: the subject is `sub_id`; a SET is not a session token that expires).
// A failure is a value carrying RFC 8935's `err` code (section 2.4), never an exception.
import { compactVerify, decodeProtectedHeader, errors, type JWTVerifyGetKey, type ProtectedHeaderParameters } from 'jose';
import { ALLOWED_ALGORITHMS } from '../tokens/key-set.ts';

/** RFC 8935 section 2.4 (IANA "Security Event Token Error Codes"): the codes this receiver answers. */
export type SetErr = 'invalid_request' | 'invalid_key' | 'invalid_issuer' | 'invalid_audience' | 'authentication_failed';
export const SET_ERRS: readonly SetErr[] = ['invalid_request', 'invalid_key', 'invalid_issuer', 'invalid_audience', 'authentication_failed'];

export interface SetRefusal {
  readonly ok: false;
  readonly err: SetErr;
  readonly description: string;
}

/** Not the SET's fault (its transmitter's keys could not be fetched): 503, so it is sent again. */
export interface SetUnavailable {
  readonly ok: false;
  readonly err: 'unavailable';
  readonly description: string;
}

export interface ValidSet {
  readonly ok: true;
  readonly issuer: string;
  readonly jti: string;
  /** Seconds. */
  readonly iat: number;
  readonly subId: Record<string, unknown>;
  /** The one event's type URI and payload. */
  readonly eventUri: string;
  readonly payload: Record<string, unknown>;
}

export type CheckedSet = ValidSet | SetRefusal | SetUnavailable;

export interface Transmitter {
  readonly issuer: string;
  readonly audience: string;
  readonly keys: JWTVerifyGetKey;
}

/** SPEC: an `iat` no older than 10 minutes. */
export const SET_MAX_AGE_MS = 600_000;
/** An `iat` this far in the transmitter's future is still its clock, not a forgery window. */
export const SET_FUTURE_SKEW_MS = 30_000;

const refuse = (err: SetErr, description: string): SetRefusal => ({ ok: false, err, description });
type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json => value !== null && typeof value === 'object' && !Array.isArray(value);

/** RFC 7515 4.1.9: a `typ` without "/" means "application/" + it, compared case-insensitively. */
function isSetType(typ: unknown): boolean {
  if (typeof typ !== 'string') return false;
  const type = typ.toLowerCase();
  return type === 'secevent+jwt' || type === 'application/secevent+jwt';
}

/** The unverified payload's `iss`: only to choose whose keys verify it. */
function claimedIssuer(token: string): string | undefined {
  try {
    const payload: unknown = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'));
    return isObject(payload) && typeof payload.iss === 'string' ? payload.iss : undefined;
  } catch {
    return undefined;
  }
}

export async function checkSet(token: string, transmitters: ReadonlyMap<string, Transmitter>, now = Date.now()): Promise<CheckedSet> {
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token)) return refuse('invalid_request', 'the body is not a compact JWS (three base64url parts)');
  let header: ProtectedHeaderParameters;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    return refuse('invalid_request', 'the JWS header is not valid JSON');
  }
  if (!isSetType(header.typ)) return refuse('invalid_request', `the JWS header typ must be "secevent+jwt", got ${JSON.stringify(header.typ ?? null)}`);
  // SPEC "Tokens": asymmetric algorithms only, never `none` or HMAC (a shared secret is no proof of who sent it).
  if (typeof header.alg !== 'string' || !ALLOWED_ALGORITHMS.includes(header.alg)) {
    return refuse('invalid_key', `the JWS algorithm ${JSON.stringify(header.alg ?? null)} is not accepted (asymmetric only: ${ALLOWED_ALGORITHMS.join(', ')})`);
  }
  const iss = claimedIssuer(token);
  if (iss === undefined) return refuse('invalid_request', 'the SET has no iss claim');
  const transmitter = transmitters.get(iss);
  if (!transmitter) return refuse('invalid_issuer', `${JSON.stringify(iss.slice(0, 256))} is not a configured transmitter (signals.transmitters[].issuer)`);
  let bytes: Uint8Array;
  try {
    ({ payload: bytes } = await compactVerify(token, transmitter.keys, { algorithms: ALLOWED_ALGORITHMS }));
  } catch (error) {
    return verifyFailure(error, iss);
  }
  // Signed by the transmitter from here on: every further refusal is about what it said.
  let claims: unknown;
  try {
    claims = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return refuse('invalid_request', 'the SET payload is not JSON');
  }
  if (!isObject(claims)) return refuse('invalid_request', 'the SET payload is not a JSON object');
  const aud = claims.aud;
  const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
  if (!audiences.includes(transmitter.audience)) return refuse('invalid_audience', `aud must name ${JSON.stringify(transmitter.audience)} (signals.transmitters[].audience)`);
  if (typeof claims.iat !== 'number' || !Number.isFinite(claims.iat)) return refuse('invalid_request', 'iat must be a number (seconds)');
  const iatMs = claims.iat * 1000;
  if (now - iatMs > SET_MAX_AGE_MS) return refuse('invalid_request', `iat is ${Math.round((now - iatMs) / 1000)} s old (at most ${SET_MAX_AGE_MS / 1000} s)`);
  if (iatMs - now > SET_FUTURE_SKEW_MS) return refuse('invalid_request', `iat is ${Math.round((iatMs - now) / 1000)} s in the future (at most ${SET_FUTURE_SKEW_MS / 1000} s)`);
  if (typeof claims.jti !== 'string' || claims.jti === '' || claims.jti.length > 256) return refuse('invalid_request', 'jti must be a string of 1 to 256 characters');
  // SSF 1.0: the subject is `sub_id`; a SET with `sub` or `exp` is a token of another kind.
  if (claims.sub !== undefined) return refuse('invalid_request', 'a SET must not carry a sub claim (the subject is sub_id)');
  if (claims.exp !== undefined) return refuse('invalid_request', 'a SET must not carry an exp claim');
  if (!isObject(claims.sub_id) || typeof claims.sub_id.format !== 'string') return refuse('invalid_request', 'the SET needs a top-level sub_id object with a format');
  if (!isObject(claims.events)) return refuse('invalid_request', 'the SET needs an events object');
  const uris = Object.keys(claims.events);
  if (uris.length !== 1) return refuse('invalid_request', `the SET must carry exactly one event, got ${uris.length}`);
  const eventUri = uris[0]!;
  const payload = claims.events[eventUri];
  if (!isObject(payload)) return refuse('invalid_request', 'the event payload must be a JSON object');
  return { ok: true, issuer: iss, jti: claims.jti, iat: claims.iat, subId: claims.sub_id, eventUri, payload };
}

function verifyFailure(error: unknown, iss: string): SetRefusal | SetUnavailable {
  const code = error instanceof errors.JOSEError ? error.code : undefined;
  switch (code) {
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return refuse('invalid_key', `the signature does not verify with the keys of ${iss}`);
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return refuse('invalid_key', `no single key of ${iss} matches the JWS header (kid, alg)`);
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return refuse('invalid_key', 'the JWS algorithm is not accepted');
    case 'ERR_JWS_INVALID':
    case 'ERR_JOSE_NOT_SUPPORTED':
      return refuse('invalid_request', `not a valid JWS: ${(error as Error).message}`);
    default:
      // The key set could not be fetched (timeout, network, a broken JWKS): ours to fix, not the SET's.
      return { ok: false, err: 'unavailable', description: `the keys of ${iss} could not be loaded: ${(error as Error).message}` };
  }
}
