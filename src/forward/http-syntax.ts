// RFC 9110 field syntax, shared by what we read from the service and what we write to it.

/** A token: method, field name (tchar+). */
export const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Per byte: 1 if it may appear in a token. */
export const TOKEN_CHAR = new Uint8Array(256);
/** Per byte: 1 if it may appear in a field value or reason phrase (HTAB, SP, VCHAR, obs-text). */
export const FIELD_CHAR = new Uint8Array(256);
for (let c = 0; c < 256; c++) {
  TOKEN_CHAR[c] = TOKEN.test(String.fromCharCode(c)) ? 1 : 0;
  FIELD_CHAR[c] = c === 0x09 || (c >= 0x20 && c !== 0x7f) ? 1 : 0;
}

/**
 * A character a field value must not contain, as read: controls other than HTAB. (Text decoded as
 * latin1 never holds anything above U+00FF.)
 */
// eslint-disable-next-line no-control-regex -- control characters are exactly what it looks for
export const BAD_VALUE_READ = /[\x00-\x08\x0a-\x1f\x7f]/;

/**
 * A character a field value we write must not contain. The head is written as latin1, so anything
 * above U+00FF would lose its high byte (U+010D would become CR) and is refused too.
 */
export const BAD_VALUE_WRITTEN = /[^\t\x20-\x7e\x80-\xff]/;

/** A character a request target we write must not contain (no space, no controls, latin1 only). */
export const BAD_TARGET = /[^\x21-\x7e\x80-\xff]/;

/** Per byte: 1 if a field value we write may contain it (HTAB, SP, VCHAR, obs-text: BAD_VALUE_WRITTEN's complement). */
const WRITTEN_CHAR = new Uint8Array(256);
/** Per byte: 1 if a request target we write may contain it (BAD_TARGET's complement). */
const TARGET_CHAR = new Uint8Array(256);
for (let c = 0; c < 256; c++) {
  WRITTEN_CHAR[c] = c === 0x09 || (c >= 0x20 && c <= 0x7e) || c >= 0x80 ? 1 : 0;
  TARGET_CHAR[c] = (c >= 0x21 && c <= 0x7e) || c >= 0x80 ? 1 : 0;
}

// The request head for the service is checked field by field on every forwarded request: a loop
// over a table costs a few ns per field where a RegExp call costs about 100 (the checks were two
// thirds of building the head, profiled). Each answers exactly as the RegExp it stands for
// (test/unit/forward/http-syntax.test.ts checks them against each other).

/** TOKEN.test(text): one or more tchar. */
export function isToken(text: string): boolean {
  if (text.length === 0) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0xff || TOKEN_CHAR[c] === 0) return false;
  }
  return true;
}

/** BAD_VALUE_WRITTEN.test(value): a character a field value we write must not contain. */
export function badValueWritten(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c > 0xff || WRITTEN_CHAR[c] === 0) return true;
  }
  return false;
}

/** BAD_TARGET.test(target): a character a request target we write must not contain. */
export function badTarget(target: string): boolean {
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c > 0xff || TARGET_CHAR[c] === 0) return true;
  }
  return false;
}
