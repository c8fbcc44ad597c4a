// A revocation entry (SPEC "Fleet-wide revocation"): what one XADD on the stream, one
// `POST /admin/revoke` or one Shared Signals event says. The same parser reads the stream's
// fields and the admin API's body, so a SOAR's `redis-cli XADD portcullis:revocations '*' jti
// 7f3a reason task-done` and `portcullis revoke --jti 7f3a` mean exactly the same thing.
// A failure is a value (STYLE): the bus skips and counts a malformed entry, the admin API answers
// 400 with the same words.
import { parseSpiffeId } from '../identity/spiffe-id.ts';

/** Where an entry came from (SPEC "Audit log": origin). */
export type RevocationOrigin = 'admin' | 'bus' | 'signals';

export interface RevocationEntry {
  /** A grant (every grant with this jti). */
  readonly jti?: string | undefined;
  /** A subject: every grant issued to it at or before the entry. */
  readonly sub?: string | undefined;
  /** A peer's posture: its assertions issued at or before the entry. */
  readonly postureSub?: string | undefined;
  /** Epoch ms after which the entry may be forgotten (it is kept at least as long as a grant it names can live). */
  readonly expMs?: number | undefined;
  readonly reason?: string | undefined;
  readonly by?: string | undefined;
}

/** Longest jti, reason or by kept: a stream is written by other tools, and a log line must stay a line. */
export const MAX_FIELD_CHARS = 256;

export type ParsedEntry = { readonly ok: true; readonly entry: RevocationEntry } | { readonly ok: false; readonly problem: string };

const bad = (problem: string): ParsedEntry => ({ ok: false, problem });

function spiffe(field: string, value: unknown): string | ParsedEntry {
  if (typeof value !== 'string') return bad(`${field}: expected a SPIFFE ID string`);
  try {
    parseSpiffeId(value);
  } catch (error) {
    return bad(`${field}: ${(error as Error).message}`);
  }
  return value;
}

function text(field: string, value: unknown): string | undefined | ParsedEntry {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') return bad(`${field}: expected a string`);
  if (value.length > MAX_FIELD_CHARS) return bad(`${field}: longer than ${MAX_FIELD_CHARS} characters`);
  // A control character would let a stream writer forge log lines.
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) return bad(`${field}: contains a control character`);
  return value;
}

/**
 * An entry from its fields: a stream entry's field map (every value a string) or the admin
 * API's JSON body (`posture_sub` in both). At least one of jti, sub, posture_sub; `exp` is unix
 * seconds (digits only, a stream has no numbers). Unknown fields are ignored on the stream (other
 * tools may add their own) but refused by the admin API (`strict`): there, a typo must not pass.
 */
export function parseEntry(fields: Readonly<Record<string, unknown>>, strict = false): ParsedEntry {
  if (strict) {
    for (const key of Object.keys(fields)) {
      if (!['jti', 'sub', 'posture_sub', 'exp', 'reason', 'by'].includes(key)) return bad(`${key}: unknown field (expected jti, sub, posture_sub, exp, reason, by)`);
    }
  }
  if (fields.jti === undefined && fields.sub === undefined && fields.posture_sub === undefined) return bad('no jti, sub or posture_sub field');
  let jti: string | undefined;
  if (fields.jti !== undefined) {
    if (typeof fields.jti !== 'string' || fields.jti === '') return bad('jti: expected a non-empty string');
    const value = text('jti', fields.jti);
    if (typeof value === 'object') return value;
    jti = value;
  }
  let sub: string | undefined;
  if (fields.sub !== undefined) {
    const value = spiffe('sub', fields.sub);
    if (typeof value === 'object') return value;
    sub = value;
  }
  let postureSub: string | undefined;
  if (fields.posture_sub !== undefined) {
    const value = spiffe('posture_sub', fields.posture_sub);
    if (typeof value === 'object') return value;
    postureSub = value;
  }
  let expMs: number | undefined;
  if (fields.exp !== undefined) {
    const raw = typeof fields.exp === 'number' ? String(fields.exp) : fields.exp;
    if (typeof raw !== 'string' || !/^\d{1,12}$/.test(raw)) return bad('exp: expected unix seconds (digits)');
    expMs = Number(raw) * 1000;
  }
  const reason = text('reason', fields.reason);
  if (typeof reason === 'object') return reason;
  const by = text('by', fields.by);
  if (typeof by === 'object') return by;
  return { ok: true, entry: { jti, sub, postureSub, expMs, reason, by } };
}

/** The stream fields of an entry (XADD's field map), in SPEC names. */
export function entryFields(entry: RevocationEntry): Record<string, string> {
  const fields: Record<string, string> = {};
  if (entry.jti !== undefined) fields.jti = entry.jti;
  if (entry.sub !== undefined) fields.sub = entry.sub;
  if (entry.postureSub !== undefined) fields.posture_sub = entry.postureSub;
  if (entry.expMs !== undefined) fields.exp = String(Math.floor(entry.expMs / 1000));
  if (entry.reason !== undefined) fields.reason = entry.reason;
  if (entry.by !== undefined) fields.by = entry.by;
  return fields;
}

/** What an entry names, for answers and log lines: `{jti}`, `{sub}`, `{posture_sub}`. */
export function entryTargets(entry: RevocationEntry): Record<string, string> {
  const targets: Record<string, string> = {};
  if (entry.jti !== undefined) targets.jti = entry.jti;
  if (entry.sub !== undefined) targets.sub = entry.sub;
  if (entry.postureSub !== undefined) targets.posture_sub = entry.postureSub;
  return targets;
}

/** The millisecond time of a stream id (`1733090000000-0`), or undefined if it is not one. */
export function streamIdTime(id: string): number | undefined {
  const match = /^(\d{1,16})-(\d{1,20})$/.exec(id);
  return match ? Number(match[1]) : undefined;
}

/** Stream ids compared as Redis does: time, then sequence. */
export function compareStreamIds(a: string, b: string): number {
  const [at, as] = a.split('-');
  const [bt, bs] = b.split('-');
  const t = BigInt(at ?? '0') - BigInt(bt ?? '0');
  if (t !== 0n) return t < 0n ? -1 : 1;
  const s = BigInt(as ?? '0') - BigInt(bs ?? '0');
  return s === 0n ? 0 : s < 0n ? -1 : 1;
}
