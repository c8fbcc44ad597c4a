// Field names compared on the bytes as sent, ignoring case, so that no lower-cased copy of a
// name is made per field (RFC 9110 5.1: field names are case-insensitive).

/**
 * `buf[start, start + lower.length)` is `lower` (a lower-case token) in any case. Only sound on
 * bytes already checked to be tchar: among those, only A-Z become a-z when 0x20 is set.
 */
export function nameIs(buf: Uint8Array, start: number, length: number, lower: string): boolean {
  if (length !== lower.length) return false;
  for (let k = 0; k < length; k++) if ((buf[start + k]! | 0x20) !== lower.charCodeAt(k)) return false;
  return true;
}

/** `buf[start, end)` is `lower` in any case (the caller already knows the bytes are letters or `-`). */
export function bytesAre(buf: Uint8Array, start: number, end: number, lower: string): boolean {
  return nameIs(buf, start, end - start, lower);
}
