// Header text is read as latin1, one byte per character, as Node's parser binding makes it
// (OneByteString): obs-text bytes survive as U+0080-U+00FF and are refused later where needed.

/** `buf[start, end)` as a latin1 string. */
export function latin1(buf: Buffer, start: number, end: number): string {
  return buf.toString('latin1', start, end);
}
