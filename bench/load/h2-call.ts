// One HTTP/2 exchange as the bench's HTTP/2 and gRPC cases send it: a session (TLS with the
// client certificate, or h2c with prior knowledge), the request's header block, and a call that
// reports the answer's status (for gRPC: the grpc-status of the Trailers-Only headers or of the
// trailers). Shared by the load generator (h2-loadgen.ts) and run.ts's probe of a case.
import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import { readFileSync } from 'node:fs';

export interface SessionOptions {
  port: number;
  host?: string;
  /** Present the client certificate over TLS (ALPN h2); without it, h2c with prior knowledge. */
  tls?: { ca: string; cert: string; key: string };
}

export interface CallOptions {
  path: string;
  method?: string;
  headers?: Record<string, string>;
  /** A gRPC unary call: POST, `content-type: application/grpc`, `te: trailers`, one framed message. */
  grpc?: boolean;
}

/** The unary request message: protobuf field 1 (string) = "42", in gRPC's 5-byte framing. */
export const GRPC_REQUEST = grpcFrame(Buffer.from([0x0a, 0x02, 0x34, 0x32]));

/** gRPC length-prefixed message (PROTOCOL-HTTP2 "Length-Prefixed-Message"), uncompressed. */
export function grpcFrame(message: Buffer): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  return frame;
}

export function openSession(o: SessionOptions): ClientHttp2Session {
  const host = o.host ?? '127.0.0.1';
  if (!o.tls) return connect(`http://${host}:${o.port}`);
  return connect(`https://${host}:${o.port}`, { ca: readFileSync(o.tls.ca), cert: readFileSync(o.tls.cert), key: readFileSync(o.tls.key), servername: 'localhost' });
}

export function requestHeaders(o: CallOptions): OutgoingHttpHeaders {
  const base: OutgoingHttpHeaders = { ':method': o.method ?? (o.grpc ? 'POST' : 'GET'), ':path': o.path, ':authority': 'localhost' };
  if (o.grpc) Object.assign(base, { 'content-type': 'application/grpc', te: 'trailers' });
  return Object.assign(base, o.headers);
}

export interface Answer {
  /** HTTP status, 0 if none arrived. */
  status: number;
  /** gRPC: the grpc-status received (headers or trailers), or undefined. */
  grpcStatus: string | undefined;
  grpcMessage: string | undefined;
  bytes: number;
  /** The stream ended with a reset or the session failed. */
  failed: boolean;
}

/** Sends one request on `session` and calls `done` once, when the stream has closed. */
export function call(session: ClientHttp2Session, headers: OutgoingHttpHeaders, body: Buffer | undefined, done: (answer: Answer) => void): ClientHttp2Stream {
  const stream = session.request(headers, { endStream: body === undefined });
  const answer: Answer = { status: 0, grpcStatus: undefined, grpcMessage: undefined, bytes: 0, failed: false };
  const grpcFields = (fields: IncomingHttpHeaders) => {
    const value = fields['grpc-status'];
    if (value !== undefined) answer.grpcStatus = String(value);
    const message = fields['grpc-message'];
    if (message !== undefined) answer.grpcMessage = String(message);
  };
  stream.on('response', (fields) => {
    answer.status = Number(fields[':status'] ?? 0);
    grpcFields(fields);
  });
  stream.on('trailers', grpcFields);
  stream.on('data', (chunk: Buffer) => (answer.bytes += chunk.length));
  stream.on('error', () => (answer.failed = true));
  stream.on('close', () => {
    if (stream.rstCode !== constants.NGHTTP2_NO_ERROR) answer.failed = true;
    done(answer);
  });
  if (body !== undefined) stream.end(body);
  return stream;
}

/** A 2xx answer; for gRPC, grpc-status 0 and a framed message in the body. */
export function answerOk(answer: Answer, grpc: boolean): boolean {
  if (answer.failed || answer.status < 200 || answer.status > 299) return false;
  return !grpc || (answer.grpcStatus === '0' && answer.bytes >= 5);
}

/** One call on a fresh session, for probing a case before it is measured. */
export function callOnce(o: SessionOptions & CallOptions, timeoutMs = 5000): Promise<Answer> {
  return new Promise((resolve) => {
    const session = openSession(o);
    const failed: Answer = { status: 0, grpcStatus: undefined, grpcMessage: undefined, bytes: 0, failed: true };
    const timer = setTimeout(() => {
      session.destroy();
      resolve(failed);
    }, timeoutMs);
    session.on('error', () => undefined);
    session.on('close', () => {
      clearTimeout(timer);
      resolve(failed); // no-op if the call already answered
    });
    call(session, requestHeaders(o), o.grpc ? GRPC_REQUEST : undefined, (answer) => {
      clearTimeout(timer);
      resolve(answer);
      session.close();
    });
  });
}
