// What one HTTP/1.1 request head says, as the proxy needs it: one object per request, its fields
// kept as sent (Node's `rawHeaders` shape), and the framing decided once, here.

/** No body, a body of `contentLength` bytes, or a chunked body (RFC 9112 6.3). */
export type BodyFraming = 'none' | 'length' | 'chunked';

/** `Expect` (RFC 9110 10.1.1): absent, `100-continue`, or anything else (answered 417 today). */
export type Expectation = 'none' | 'continue' | 'other';

export interface RequestHead {
  /** One of llhttp's methods, as a shared constant string (no allocation per request). */
  readonly method: string;
  /** The request-target exactly as sent (origin-form: starts with `/`). */
  readonly target: string;
  /** 10 for HTTP/1.0, 11 for HTTP/1.1. */
  readonly version: 10 | 11;
  /** name, value, name, value…: names as sent, values without surrounding whitespace. */
  readonly fields: string[];
  readonly framing: BodyFraming;
  /** The body's length when `framing` is 'length', else 0. */
  readonly contentLength: number;
  /** The connection stays open after this request (RFC 9112 9.3), as llhttp_should_keep_alive. */
  readonly keepAlive: boolean;
  /** `Upgrade` with `Connection: upgrade`: the bytes after this head belong to another protocol. */
  readonly upgrade: boolean;
  readonly expect: Expectation;
  /** How many bytes of the chunk last pushed belong to this head; the body or next request starts there. */
  readonly consumed: number;
}
