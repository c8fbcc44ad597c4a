/** An answer from the service that cannot be read safely: its connection is dropped, never reused. */
export class ResponseParseError extends Error {
  override readonly name = 'ResponseParseError';
}
