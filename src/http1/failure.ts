// How the HTTP/1.1 request reader refuses: a value, never an exception (STYLE "a failure is a
// value"). The wiring maps each to its SPEC answer: `bad_request` → 400 `bad_request`,
// `headers_too_large` → 431 (as Node's HPE_HEADER_OVERFLOW is answered today), `bad_target` →
// 400 `bad_path` (as HPE_INVALID_URL is). After any of them the connection closes: where the
// refused request ends is in doubt, so nothing after it can be trusted. Two come from the
// connection reader (connection-reader.ts) and get no answer of their own: `bytes_after_close`
// (bytes other than empty lines after a request that closes the connection: that request's
// answer is still due, then close; llhttp's HPE_CLOSED_CONNECTION) and `incomplete` (the socket
// ended in the middle of a request: nobody is left to answer).

export type Http1Refusal = 'bad_request' | 'headers_too_large' | 'bad_target' | 'bytes_after_close' | 'incomplete';

export interface Http1Failure {
  readonly error: Http1Refusal;
  /** What was wrong, for the log line; never sent to the client. */
  readonly detail: string;
}

export function failure(error: Http1Refusal, detail: string): Http1Failure {
  return { error, detail };
}

export function isFailure(value: unknown): value is Http1Failure {
  return typeof value === 'object' && value !== null && (value as Http1Failure).error !== undefined;
}
