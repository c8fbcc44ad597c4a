// The answer to an HTTP/2 request (SPEC "Protocols and streams"): the service's response relayed
// into our stream with HTTP/2 flow control end to end, refusals in the SPEC's JSON format, and a
// cut that resets the stream. gRPC calls are a kind of their own (GrpcReply): refusals and cuts
// the gRPC way, as Trailers-Only answers or trailers with a grpc-status.
import { constants, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { denial, type Denial } from '../decision/denial.ts';
import { connectionListed } from '../forward/headers.ts';
import type { UpstreamError } from '../forward/upstream-pool.ts';
import type { CutReason } from './open-exchanges.ts';
import { cutDenialReason, type Reply, type ReplyEvents, type UpstreamHandle } from './reply.ts';

/** RFC 9113 8.2.2: connection-specific fields have no place in HTTP/2 (Node refuses to send them). */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'proxy-authenticate']);

/** The service's flat header list as an HTTP/2 header object, without what HTTP/2 forbids. */
export function h2Headers(status: number, headers: readonly string[]): OutgoingHttpHeaders {
  const listed = connectionListed(headers);
  const out: OutgoingHttpHeaders = { ':status': status };
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!.toLowerCase();
    if (CONNECTION_SPECIFIC.has(name) || listed?.has(name) || name.startsWith(':')) continue;
    const value = headers[i + 1]!;
    const seen = out[name];
    if (seen === undefined) out[name] = value;
    else if (Array.isArray(seen)) seen.push(value);
    else out[name] = [String(seen), value];
  }
  return out;
}

const REPLY = Symbol('portcullis.reply');
type RepliedStream = ServerHttp2Stream & { [REPLY]?: H2Reply<unknown> };

function onStreamClose(this: RepliedStream): void {
  this[REPLY]!.streamClosed();
}

function onStreamDrain(this: RepliedStream): void {
  this[REPLY]!.call?.resume();
}

function onWantTrailers(this: RepliedStream): void {
  this[REPLY]!.sendTrailers();
}

export class H2Reply<X> implements Reply {
  readonly kind: 'h2' | 'grpc' = 'h2';
  call: UpstreamHandle | undefined;
  bytesSent = 0;
  protected readonly x: X;
  protected readonly stream: RepliedStream;
  protected readonly events: ReplyEvents<X>;
  protected done = false;
  /** The service's trailers, sent when our last DATA frame has gone (waitForTrailers). */
  protected trailers: OutgoingHttpHeaders | undefined;

  constructor(x: X, stream: ServerHttp2Stream, events: ReplyEvents<X>) {
    this.x = x;
    this.stream = stream as RepliedStream;
    this.events = events;
    this.stream[REPLY] = this;
    stream.once('close', onStreamClose);
  }

  get started(): boolean {
    return this.stream.headersSent;
  }

  relayFrom(call: UpstreamHandle): void {
    this.call = call;
  }

  /** The stream closed (answer complete, client reset, session gone): abort what still relays. */
  streamClosed(): void {
    if (this.done) return;
    this.done = true;
    this.call?.abort();
  }

  onHead(status: number, headers: string[]): void {
    if (this.stream.destroyed) return;
    this.events.answered(this.x, String(status));
    this.respond(h2Headers(status, headers));
  }

  protected respond(headers: OutgoingHttpHeaders, endStream = false): void {
    try {
      this.stream.respond(headers, { waitForTrailers: !endStream, endStream });
      if (!endStream) this.stream.once('wantTrailers', onWantTrailers);
    } catch {
      // A header the service sent that HTTP/2 cannot carry: as broken as a malformed answer.
      this.stream.close(constants.NGHTTP2_INTERNAL_ERROR);
    }
  }

  onData(chunk: Buffer): boolean {
    if (this.stream.destroyed) return true;
    this.bytesSent += chunk.length;
    if (this.stream.write(chunk)) return true;
    this.stream.once('drain', onStreamDrain);
    return false;
  }

  onEnd(last: Buffer | undefined, trailers?: string[]): void {
    if (this.stream.destroyed) return;
    if (last !== undefined) this.bytesSent += last.length;
    if (trailers !== undefined && trailers.length > 0) this.trailers = trailerObject(trailers);
    this.stream.end(last);
  }

  sendTrailers(): void {
    this.done = true;
    if (!this.stream.destroyed) this.stream.sendTrailers(this.trailers ?? {});
  }

  onError(error: UpstreamError, responseStarted: boolean): void {
    if (responseStarted || this.stream.headersSent) {
      this.done = true;
      this.stream.close(constants.NGHTTP2_INTERNAL_ERROR);
    } else {
      this.events.failed(this.x, error);
    }
  }

  deny(denied: Denial, requestId: string): void {
    this.done = true;
    if (this.stream.destroyed) return;
    if (this.stream.headersSent) {
      this.stream.close(constants.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    this.events.answered(this.x, String(denied.status));
    const body = `{"error":${JSON.stringify(denied.error)},"reason":"${denied.reason}","request_id":${JSON.stringify(requestId)}}`;
    this.bytesSent += body.length;
    this.stream.respond({ ':status': denied.status, 'content-type': 'application/json', 'content-length': body.length, 'cache-control': 'no-store', 'x-request-id': requestId });
    this.stream.end(body);
  }

  cut(reason: CutReason, requestId: string): void {
    const call = this.call;
    this.call = undefined;
    call?.abort();
    if (!this.stream.headersSent) {
      this.deny(denial(cutDenialReason(reason)), requestId);
      return;
    }
    this.done = true;
    // SPEC "Streams": an HTTP/2 stream is reset, both directions at once.
    if (!this.stream.destroyed) this.stream.close(constants.NGHTTP2_CANCEL);
  }
}

function trailerObject(trailers: readonly string[]): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (let i = 0; i < trailers.length; i += 2) {
    const name = trailers[i]!.toLowerCase();
    if (CONNECTION_SPECIFIC.has(name) || name.startsWith(':')) continue;
    out[name] = trailers[i + 1]!;
  }
  return out;
}

/** SPEC "Protocols and streams": the SPEC status of a refusal as a gRPC status code. */
export function grpcStatusOf(status: number): string {
  switch (status) {
    case 400:
      return '3'; // INVALID_ARGUMENT
    case 401:
      return '16'; // UNAUTHENTICATED
    case 403:
      return '7'; // PERMISSION_DENIED
    case 502:
    case 503:
      return '14'; // UNAVAILABLE
    case 504:
      return '4'; // DEADLINE_EXCEEDED
    default:
      return '2'; // UNKNOWN
  }
}

/** After a call's status is sent, how long its client may take to stop sending. */
const HALF_OPEN_GRACE_MS = 1000;

function closeStream(stream: ServerHttp2Stream): void {
  if (!stream.destroyed) stream.close(constants.NGHTTP2_NO_ERROR);
}

/** A gRPC call: the same relay, with refusals and cuts as gRPC statuses instead of HTTP ones. */
export class GrpcReply<X> extends H2Reply<X> {
  override readonly kind = 'grpc';
  /** Head of a service answer that may be Trailers-Only (it carries grpc-status): held until we know. */
  private heldHead: OutgoingHttpHeaders | undefined;
  /** The call was ended by us (a cut, a service failure mid-call), not by the service's own end. */
  private forcedEnd = false;

  override onHead(status: number, headers: string[]): void {
    if (this.stream.destroyed) return;
    const head = h2Headers(status, headers);
    if (head['grpc-status'] !== undefined) {
      this.heldHead = head;
      return;
    }
    this.respond(head);
  }

  override onData(chunk: Buffer): boolean {
    this.releaseHead();
    return super.onData(chunk);
  }

  override onEnd(last: Buffer | undefined, trailers?: string[]): void {
    if (this.heldHead !== undefined && (last === undefined || last.length === 0) && (trailers === undefined || trailers.length === 0)) {
      // Trailers-Only from the service: relayed as one HEADERS frame, as it came.
      const head = this.heldHead;
      this.heldHead = undefined;
      this.done = true;
      this.events.answered(this.x, String(head['grpc-status']));
      if (!this.stream.destroyed) this.respond(head, true);
      return;
    }
    this.releaseHead();
    super.onEnd(last, trailers);
  }

  private releaseHead(): void {
    if (this.heldHead === undefined) return;
    const head = this.heldHead;
    this.heldHead = undefined;
    this.respond(head);
  }

  override sendTrailers(): void {
    this.events.answered(this.x, String(this.trailers?.['grpc-status'] ?? '2'));
    super.sendTrailers();
    // The client ends its half when it reads our status; one that keeps sending is reset a little later.
    if (this.forcedEnd) setTimeout(closeStream, HALF_OPEN_GRACE_MS, this.stream).unref();
  }

  override onError(error: UpstreamError, responseStarted: boolean): void {
    if (responseStarted || this.stream.headersSent) {
      // The service failed mid-call: the client gets UNAVAILABLE (or DEADLINE_EXCEEDED), never a silent hang.
      this.endWith(grpcStatusOf(denial(error.reason).status), error.reason);
      return;
    }
    this.heldHead = undefined;
    this.events.failed(this.x, error);
  }

  /** SPEC: a gRPC refusal is Trailers-Only, HTTP status 200, grpc-status mapped, reason in grpc-message. */
  override deny(denied: Denial, requestId: string): void {
    if (this.stream.destroyed) return;
    if (this.stream.headersSent) {
      this.endWith(grpcStatusOf(denied.status), denied.reason);
      return;
    }
    this.done = true;
    const code = grpcStatusOf(denied.status);
    this.events.answered(this.x, code);
    this.stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': code, 'grpc-message': denied.reason, 'x-request-id': requestId }, { endStream: true });
  }

  /** SPEC "Streams": a cut gRPC stream gets trailers grpc-status 16 with the reason. */
  override cut(reason: CutReason, requestId: string): void {
    const call = this.call;
    this.call = undefined;
    call?.abort();
    if (!this.stream.headersSent && this.heldHead === undefined) {
      // Not answered yet: Trailers-Only, with the cut's status whatever the reason's HTTP status.
      this.done = true;
      if (this.stream.destroyed) return;
      this.events.answered(this.x, '16');
      this.stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '16', 'grpc-message': reason, 'x-request-id': requestId }, { endStream: true });
      return;
    }
    this.releaseHead();
    this.endWith('16', reason);
  }

  /**
   * Ends a call that is already answering, with this status: our last DATA, then the trailers
   * ('wantTrailers'), then a reset so the client stops sending too (both directions, SPEC "Streams").
   */
  private endWith(code: string, message: string): void {
    this.trailers = { 'grpc-status': code, 'grpc-message': message };
    this.forcedEnd = true;
    if (!this.stream.destroyed && !this.stream.writableEnded) this.stream.end();
  }
}
