// Header text is read as latin1, one byte per character, as Node's parser binding makes it
// (OneByteString): obs-text bytes survive as U+0080-U+00FF and are refused later where needed.

interface Latin1Slicer {
  latin1Slice(start: number, end: number): string;
}

/**
 * `buf[start, end)` as a latin1 string. Buffer's own latin1Slice, which `toString('latin1', …)`
 * calls after checking its arguments again (a tenth of the parser's time, profiled); the parser
 * only asks for ranges inside the buffer.
 */
export function latin1(buf: Buffer, start: number, end: number): string {
  return (buf as unknown as Latin1Slicer).latin1Slice(start, end);
}
