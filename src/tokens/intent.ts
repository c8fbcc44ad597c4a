// The declared intent (SPEC "Tokens"): printable text, at most 256 bytes. Printable UTF-8 is
// allowed (a grant's intent claim is JSON, so any language), counted in bytes, not UTF-16 units.
const MAX_INTENT_BYTES = 256;
const UTF8 = new TextDecoder('utf-8', { fatal: true });
// Controls (C0, DEL, C1) and line or paragraph separators are not printable text.
const NOT_PRINTABLE = /[\p{Cc}\u2028\u2029]/u;

/**
 * The intent header's value, undefined when absent, or null when malformed. Node hands header
 * values over as latin1 (one char per byte), so the bytes are decoded as UTF-8 here, and a value
 * that is not valid UTF-8 is malformed, never guessed at.
 */
export function readIntent(value: string | string[] | undefined): string | undefined | null {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_INTENT_BYTES) return null;
  // Printable ASCII, the usual case: the value is its own text (no copy, no decoding).
  let ascii = true;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c >= 0x20 && c <= 0x7e) continue;
    // A code unit beyond one byte cannot come from the wire's latin1 view: refuse rather than guess.
    if (c < 0x80 || c > 0xff) return null;
    ascii = false;
  }
  if (ascii) return value;
  let text: string;
  try {
    text = UTF8.decode(Buffer.from(value, 'latin1'));
  } catch {
    return null;
  }
  return NOT_PRINTABLE.test(text) ? null : text;
}
