// Our HTTP/2 client for the service (`upstream.protocol: h2c`): HTTP/2 in clear with prior
// knowledge (RFC 9113 3.3) over TCP or a unix socket, on a small pool of node:http2 sessions.
// It answers through the same sink as the HTTP/1.1 pool (`UpstreamExchange`) and fails with the
// same `UpstreamError` reasons, so the caller has one way to relay any answer.
//
// What it does, and its limits:
// - Sessions: at most `maxSessions` taking new streams. A session takes streams up to the
//   service's SETTINGS_MAX_CONCURRENT_STREAMS; until its first SETTINGS arrive it takes one (we
//   don't know the limit yet, and a stream nghttp2 holds back unsent would sit on a session that
//   may never have room). When every session is full, another is opened (one handshake at a time),
//   else the call waits in a queue of at most `maxQueued` (default max(1024, 16 × maxSessions));
//   a full queue fails at once (`upstream_unavailable`), a call queued past `timeoutMs` fails
//   `upstream_timeout`. A session with no stream for `sessionIdleMs` (default 30 s) is closed.
// - Connecting: a session whose first SETTINGS have not come within `connectTimeoutMs` is
//   destroyed (`upstream_timeout`); a refused or broken connection is `upstream_unavailable`.
// - Timeouts: no response head within `timeoutMs` of the request's last byte → `upstream_timeout`
//   and the stream is reset (RST_STREAM CANCEL). Until the request body has ended, and after the
//   head, the call's own `idleTimeoutMs` is the longest silence (undefined: none, for long gRPC
//   streams, which the caller ends when their grant does); time spent waiting for our own client
//   to read never counts against the service. One sweep per pool checks every limit, every eighth
//   of the shortest pool timeout (10 ms to 1 s), so a limit fires at most that late.
// - GOAWAY: the session takes no new stream, streams it accepted finish; it no longer counts
//   against `maxSessions` (draining sessions are capped at as many again). A stream the service
//   never processed (above GOAWAY's last stream id, or reset with REFUSED_STREAM, RFC 9113 8.7)
//   is sent again, once, on another session, if none of its body had been sent yet. Any other
//   end of a session or stream before the response ends fails the call `upstream_unavailable`.
//   (node:http2 can't tell a RST_STREAM NO_ERROR before END_STREAM from an end: an answer with a
//   content-length it did not meet is reset by nghttp2 itself, RFC 9113 8.1.1; a gRPC answer cut
//   so has no grpc-status trailer, which its client reports as an error.)
// - Trailers both ways: the service's trailers go to `onEnd`; a request body that emits
//   'trailers' before 'end' (an inbound Http2Stream does) has them sent on the upstream stream.
// - Flow control end to end: `onData` returning false pauses the upstream stream (node:http2 then
//   stops returning stream window to the service) until `resume()`; the request body is written
//   with backpressure (paused while the upstream stream's buffer is full, resumed on 'drain'), so
//   per stream the pool holds about one flow-control window each way, never an unbounded buffer.
// - Fields: `:status` and other pseudo-headers, and connection-specific fields (RFC 9113 8.2.2),
//   are not relayed; the request's pseudo-headers are ours alone (h2-fields.ts).
//
// Hot path: per request one H2cCall and one field list; stream and body listeners are
// module-level functions that find their call through one symbol property (no closure per request).
import { connect as connectHttp2, constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type IncomingHttpStatusHeader, type Settings } from 'node:http2';
import { connect as connectNet } from 'node:net';
import type { Readable } from 'node:stream';
import { flatten, relayedFields, requestFields, trailerObject } from './h2-fields.ts';
import { UpstreamError, type UpstreamExchange } from './upstream-pool.ts';

const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR, NGHTTP2_REFUSED_STREAM } = constants;

export interface H2cPoolOptions {
  /** `http://host:port` or `unix:/path/to.sock`. */
  readonly url: string;
  /** Longest wait for the answer head after the request's last byte, and in the queue. */
  readonly timeoutMs: number;
  /** Longest wait for a new session's first SETTINGS from the service. */
  readonly connectTimeoutMs: number;
  /** Sessions taking new streams, at most. */
  readonly maxSessions: number;
  /** Calls waiting for stream capacity, at most. */
  readonly maxQueued?: number;
  /** A session without streams this long is closed. */
  readonly sessionIdleMs?: number;
}

/** One request for the service, as the caller describes it. */
export interface H2cRequest {
  readonly method: string;
  readonly path: string;
  /** `:authority`; the pool's own host when undefined. */
  readonly authority?: string;
  /** Lowercase names, already filtered by the caller (pseudo- and connection-specific fields are dropped anyway). */
  readonly headers: readonly string[];
  /** The inbound body, or null when there is none. */
  readonly body: Readable | null;
  /** Longest silence while the body is sent and after the head; undefined: none. */
  readonly idleTimeoutMs?: number;
  readonly exchange: UpstreamExchange;
}

const CALL = Symbol('h2c-call');
type Tagged<T> = T & { [CALL]?: H2cCall };

const END_STREAM = { endStream: true } as const;
const WITH_BODY = { endStream: false, waitForTrailers: true } as const;
const NO_TRAILERS = Object.freeze(Object.create(null) as Record<string, string>);
/** Before a session's first SETTINGS, it takes this many streams (see the header comment). */
const UNKNOWN_CAPACITY = 1;

/** One request to the service; lives until its answer ends, fails or is aborted. */
export class H2cCall {
  readonly request: H2cRequest;
  private readonly pool: H2cPool;
  /** The request's raw header list, made once (a retry sends the same). */
  fields: string[] | undefined;
  session: H2cSession | undefined;
  stream: ClientHttp2Stream | undefined;
  /** When it entered the queue (performance.now()), while it waits there. */
  queuedAt = -1;
  /** The session that refused it: a retry goes elsewhere if it can. */
  refusedBy: H2cSession | undefined;
  lastActivity = 0;
  headSeen = false;
  /** The sink got its last callback (end, error) or the caller aborted. */
  done = false;
  aborted = false;
  retried = false;
  timedOut = false;
  paused = false;
  bodyAttached = false;
  bodyEnded = false;
  bodyCut = false;
  bodyBytes = 0;
  requestTrailers: Record<string, string | string[]> | undefined;
  responseTrailers: string[] | undefined;

  constructor(pool: H2cPool, request: H2cRequest) {
    this.pool = pool;
    this.request = request;
  }

  /** The caller's client went away or its stream was cut: reset the service's stream (CANCEL). */
  abort(): void {
    if (this.done) return;
    this.done = this.aborted = true;
    this.detachBody();
    if (this.queuedAt >= 0) this.pool.unqueue(this);
    this.pool.settled(this);
    this.stream?.close(NGHTTP2_CANCEL);
  }

  /** The caller's client drained: read more of the service's body. */
  resume(): void {
    if (!this.paused || this.done) return;
    this.paused = false;
    this.lastActivity = performance.now();
    this.stream?.resume();
  }

  /** Called by the pool's sweep. */
  expireIfStale(now: number, headTimeoutMs: number): void {
    if (this.done || this.stream === undefined) return;
    let limit: number | undefined;
    if (!this.headSeen) limit = this.request.body === null || this.bodyEnded ? headTimeoutMs : this.request.idleTimeoutMs;
    else limit = this.paused ? undefined : this.request.idleTimeoutMs; // paused: waiting on our client, not the service
    if (limit === undefined || now - this.lastActivity < limit) return;
    this.timedOut = true;
    this.stream.close(NGHTTP2_CANCEL);
  }

  attachBody(body: Tagged<Readable>): void {
    this.bodyAttached = true;
    body[CALL] = this;
    body.on('data', onBodyData);
    body.on('end', onBodyEnd);
    body.on('trailers', onBodyTrailers);
    body.on('error', onBodyCut);
    body.on('close', onBodyCut);
  }

  detachBody(): void {
    const body = this.request.body as Tagged<Readable> | null;
    if (body === null || !this.bodyAttached) return;
    this.bodyAttached = false;
    body.off('data', onBodyData);
    body.off('end', onBodyEnd);
    body.off('trailers', onBodyTrailers);
    body.off('error', onBodyCut);
    body.off('close', onBodyCut);
    body[CALL] = undefined;
  }

  fail(error: UpstreamError): void {
    if (this.done) return;
    this.done = true;
    this.detachBody();
    this.pool.settled(this);
    this.request.exchange.onError(error, this.headSeen);
  }
}

// Stream and body listeners: one function each for every call (`this` is the emitter).

function onResponse(this: Tagged<ClientHttp2Stream>, headers: IncomingHttpHeaders & IncomingHttpStatusHeader, _flags: number, raw?: string[]): void {
  const call = this[CALL]!;
  if (call.done) return;
  call.headSeen = true;
  call.lastActivity = performance.now();
  call.request.exchange.onHead(headers[':status'] ?? 502, relayedFields(raw ?? flatten(headers)));
}

function onStreamData(this: Tagged<ClientHttp2Stream>, chunk: Buffer): void {
  const call = this[CALL]!;
  if (call.done) return;
  call.lastActivity = performance.now();
  if (!call.request.exchange.onData(chunk)) {
    call.paused = true;
    this.pause();
  }
}

function onStreamTrailers(this: Tagged<ClientHttp2Stream>, headers: IncomingHttpHeaders, _flags: number, raw?: string[]): void {
  const call = this[CALL]!;
  if (!call.done) call.responseTrailers = relayedFields(raw ?? flatten(headers));
}

function onStreamEnd(this: Tagged<ClientHttp2Stream>): void {
  const call = this[CALL]!;
  if (call.done) return;
  // node:http2 also ends the readable side when the stream is reset or destroyed (our own CANCEL,
  // a session torn down): that is no answer, and 'close' fails the call.
  if (this.destroyed || this.rstCode !== NGHTTP2_NO_ERROR) return;
  call.done = true;
  const body = call.request.body;
  if (body !== null && !call.bodyEnded) {
    // The service answered in full before the whole body was sent (RFC 9113 8.1): stop sending,
    // let the client's rest drain.
    call.detachBody();
    body.resume();
    this.close(NGHTTP2_NO_ERROR);
  }
  call.session!.pool.settled(call);
  call.request.exchange.onEnd(undefined, call.responseTrailers);
}

function onStreamClose(this: Tagged<ClientHttp2Stream>): void {
  const call = this[CALL]!;
  const session = call.session!;
  session.streamClosed();
  if (call.stream === this) call.stream = undefined;
  if (!call.done) session.pool.streamFailed(call, this, session);
  session.pool.drain();
}

function onWantTrailers(this: Tagged<ClientHttp2Stream>): void {
  const call = this[CALL]!;
  try {
    // No trailers: node:http2 sends an empty DATA frame with END_STREAM instead.
    this.sendTrailers(call.requestTrailers ?? NO_TRAILERS);
  } catch {
    this.close(NGHTTP2_CANCEL); // trailers node:http2 refuses to send: the request can't be completed
  }
}

function onStreamDrain(this: Tagged<ClientHttp2Stream>): void {
  const call = this[CALL]!;
  call.lastActivity = performance.now();
  if (call.bodyAttached) call.request.body!.resume();
}

function ignore(): void {}

function onBodyData(this: Tagged<Readable>, chunk: Buffer): void {
  const call = this[CALL]!;
  const stream = call.stream;
  if (stream === undefined) {
    // Between a refused stream and its retry: keep the chunk for the next stream.
    this.pause();
    this.unshift(chunk);
    return;
  }
  call.bodyBytes += chunk.length;
  call.lastActivity = performance.now();
  if (!stream.write(chunk)) this.pause();
}

function onBodyTrailers(this: Tagged<Readable>, headers: IncomingHttpHeaders, _flags?: number, raw?: string[]): void {
  this[CALL]!.requestTrailers = trailerObject(raw ?? flatten(headers));
}

function onBodyEnd(this: Tagged<Readable>): void {
  const call = this[CALL]!;
  call.bodyEnded = true;
  call.lastActivity = performance.now();
  call.detachBody();
  call.stream?.end(); // 'wantTrailers' follows
}

/** The client's body ended without 'end' (reset, destroyed): the service can't get a complete request. */
function onBodyCut(this: Tagged<Readable>): void {
  const call = this[CALL];
  if (call === undefined || call.bodyEnded || call.done) return;
  call.bodyCut = true;
  call.detachBody();
  if (call.stream !== undefined) call.stream.close(NGHTTP2_CANCEL);
  else call.fail(new UpstreamError('upstream_unavailable', 'ERR_BODY_CUT', 'the request body ended before it was complete'));
}

/** One HTTP/2 connection to the service. */
class H2cSession {
  readonly session: ClientHttp2Session;
  readonly pool: H2cPool;
  readonly openedAt = performance.now();
  /** The service's first SETTINGS arrived: the handshake is done and its stream limit known. */
  handshaken = false;
  capacity = UNKNOWN_CAPACITY;
  active = 0;
  /** Takes no new streams (GOAWAY either way, an error, idle or pool close). */
  draining = false;
  connectTimedOut = false;
  /** GOAWAY's last stream id: streams above it were never processed by the service. */
  goawayLastStreamId = -1;
  idleSince = this.openedAt;

  constructor(pool: H2cPool, session: ClientHttp2Session) {
    this.pool = pool;
    this.session = session;
    session.on('remoteSettings', (settings: Settings) => {
      this.handshaken = true;
      this.capacity = settings.maxConcurrentStreams ?? 100;
      pool.drain();
    });
    session.on('goaway', (_code: number, lastStreamId: number) => {
      this.draining = true;
      this.goawayLastStreamId = lastStreamId;
    });
    session.on('error', () => (this.draining = true)); // 'close' follows; the streams fail on their own
    session.on('close', () => {
      this.draining = true;
      pool.removeSession(this);
    });
  }

  hasRoom(): boolean {
    return !this.draining && !this.session.destroyed && !this.session.closed && this.active < this.capacity;
  }

  streamClosed(): void {
    if (--this.active === 0) this.idleSince = performance.now();
  }

  /** Called by the pool's sweep. */
  expireIfStale(now: number): void {
    if (this.session.destroyed) return;
    if (!this.handshaken) {
      if (now - this.openedAt < this.pool.connectTimeoutMs) return;
      this.connectTimedOut = this.draining = true;
      this.session.destroy();
    } else if (this.active === 0 && !this.draining && now - this.idleSince >= this.pool.sessionIdleMs) {
      this.draining = true;
      this.session.close();
    }
  }
}

export class H2cPool {
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly sessionIdleMs: number;
  /** `:authority` when the request names none. */
  readonly authority: string;
  closed = false;
  private readonly origin: string;
  private readonly socketPath: string | undefined;
  private readonly maxSessions: number;
  private readonly maxQueued: number;
  private readonly sessions = new Set<H2cSession>();
  private readonly queue: H2cCall[] = [];
  /** Calls on a stream, for the sweep. */
  private readonly inflight = new Set<H2cCall>();
  private sweep: NodeJS.Timeout | undefined;
  private readonly sweepEveryMs: number;
  private closing: Promise<void> | undefined;
  private onAllClosed: (() => void) | undefined;

  constructor(options: H2cPoolOptions) {
    this.timeoutMs = options.timeoutMs;
    this.connectTimeoutMs = options.connectTimeoutMs;
    this.sessionIdleMs = options.sessionIdleMs ?? 30_000;
    this.maxSessions = Math.max(1, options.maxSessions);
    this.maxQueued = options.maxQueued ?? Math.max(1024, 16 * this.maxSessions);
    this.sweepEveryMs = Math.min(1000, Math.max(10, Math.min(this.timeoutMs, this.connectTimeoutMs) / 8));
    if (options.url.startsWith('unix:')) {
      this.socketPath = options.url.slice('unix:'.length);
      this.origin = 'http://localhost';
      this.authority = 'localhost';
    } else {
      const url = new URL(options.url);
      // Prior knowledge in clear is only for the service beside the sidecar (SPEC: http://host:port or a unix socket).
      if (url.protocol !== 'http:') throw new Error(`upstream URL must be http://host:port or unix:/path, not ${url.protocol}`);
      this.origin = url.origin;
      this.authority = url.host;
    }
  }

  /**
   * Sends the request now, on a session with room or a new one, or queues it. The sink may be
   * called (onError) before this returns.
   */
  request(request: H2cRequest): H2cCall {
    const call = new H2cCall(this, request);
    this.dispatch(call);
    return call;
  }

  private dispatch(call: H2cCall): void {
    if (this.closed) {
      call.fail(new UpstreamError('upstream_unavailable', 'ERR_POOL_CLOSED', 'the upstream pool is closed'));
      return;
    }
    const session = this.sessionFor(call);
    if (session !== undefined) {
      this.start(call, session);
    } else if (this.queue.length >= this.maxQueued) {
      call.fail(new UpstreamError('upstream_unavailable', 'ERR_QUEUE_FULL', 'too many requests are waiting for a stream to the service'));
    } else {
      call.queuedAt = performance.now();
      this.queue.push(call);
      this.ensureSweep();
    }
  }

  /** A session with room (not the one that refused this call, if another will do), or a new one. */
  private sessionFor(call: H2cCall): H2cSession | undefined {
    let fallback: H2cSession | undefined;
    for (const session of this.sessions) {
      if (!session.hasRoom()) continue;
      if (session !== call.refusedBy) return session;
      fallback = session;
    }
    return this.canOpen() ? this.open() : fallback;
  }

  private canOpen(): boolean {
    let live = 0;
    for (const session of this.sessions) {
      if (session.draining) continue;
      // One handshake at a time: until it ends we don't know how many streams a session takes.
      if (!session.handshaken) return false;
      live++;
    }
    return live < this.maxSessions && this.sessions.size < 2 * this.maxSessions;
  }

  private open(): H2cSession {
    const path = this.socketPath;
    const http2 = connectHttp2(this.origin, {
      settings: { enablePush: false },
      ...(path !== undefined ? { createConnection: () => connectNet(path) } : {}),
    });
    const session = new H2cSession(this, http2);
    this.sessions.add(session);
    this.ensureSweep();
    return session;
  }

  private start(call: H2cCall, session: H2cSession): void {
    const request = call.request;
    call.fields ??= requestFields(request.method, request.path, request.authority ?? this.authority, request.headers);
    let stream: Tagged<ClientHttp2Stream>;
    try {
      stream = session.session.request(call.fields, request.body === null ? END_STREAM : WITH_BODY);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ERR_HTTP2_OUT_OF_STREAMS' || code === 'ERR_HTTP2_INVALID_SESSION' || code === 'ERR_HTTP2_GOAWAY_SESSION') {
        session.draining = true; // this session can take no more; another may
        this.dispatch(call);
        return;
      }
      call.fail(new UpstreamError('upstream_unavailable', 'ERR_INVALID_HEADER', 'the request has a method, target or header that cannot be sent'));
      return;
    }
    session.active++;
    call.session = session;
    call.stream = stream;
    call.lastActivity = performance.now();
    this.inflight.add(call);
    stream[CALL] = call;
    stream.on('response', onResponse);
    stream.on('data', onStreamData);
    stream.on('trailers', onStreamTrailers);
    stream.on('end', onStreamEnd);
    stream.on('close', onStreamClose);
    stream.on('error', ignore); // 'close' follows and decides
    const body = request.body;
    if (body === null) return;
    stream.on('wantTrailers', onWantTrailers);
    stream.on('drain', onStreamDrain);
    if (call.bodyEnded) stream.end(); // a retried request whose (empty) body had already ended
    else if (!call.bodyAttached) call.attachBody(body);
    else body.resume();
  }

  /** A stream closed before its answer ended: send it again if the service never processed it, else fail. */
  streamFailed(call: H2cCall, stream: ClientHttp2Stream, session: H2cSession): void {
    const refused = stream.rstCode === NGHTTP2_REFUSED_STREAM || (session.goawayLastStreamId >= 0 && (stream.id === undefined || stream.id > session.goawayLastStreamId));
    if (refused && !call.headSeen && !call.timedOut && !call.bodyCut && call.bodyBytes === 0 && !call.retried) {
      // RFC 9113 8.7: the service did not process it, so sending it again is safe.
      call.retried = true;
      call.refusedBy = session;
      this.inflight.delete(call);
      call.request.body?.pause();
      this.dispatch(call);
      return;
    }
    let error: UpstreamError;
    if (call.timedOut) error = new UpstreamError('upstream_timeout', 'ERR_UPSTREAM_TIMEOUT', 'the service did not answer in time');
    else if (session.connectTimedOut) error = new UpstreamError('upstream_timeout', 'ERR_CONNECT_TIMEOUT', 'connecting to the service timed out');
    else if (!session.handshaken) error = new UpstreamError('upstream_unavailable', 'ERR_CONNECT_FAILED', 'could not connect to the service');
    else if (call.bodyCut) error = new UpstreamError('upstream_unavailable', 'ERR_BODY_CUT', 'the request body ended before it was complete');
    else if (stream.rstCode !== undefined && stream.rstCode !== NGHTTP2_NO_ERROR) error = new UpstreamError('upstream_unavailable', 'ERR_STREAM_RESET', `the service reset the stream (code ${stream.rstCode})`);
    else error = new UpstreamError('upstream_unavailable', 'ERR_CONNECTION_CLOSED', 'the stream or session to the service closed mid-exchange');
    call.fail(error);
  }

  /** The call got its last callback (or was aborted): the sweep no longer watches it. */
  settled(call: H2cCall): void {
    this.inflight.delete(call);
  }

  /** Starts queued calls while some session has room (or one can be opened). */
  drain(): void {
    while (this.queue.length > 0 && !this.closed) {
      const call = this.queue[0]!;
      const session = this.sessionFor(call);
      if (session === undefined) return;
      this.queue.shift();
      call.queuedAt = -1;
      this.start(call, session);
    }
  }

  unqueue(call: H2cCall): void {
    const at = this.queue.indexOf(call);
    if (at !== -1) this.queue.splice(at, 1);
    call.queuedAt = -1;
  }

  removeSession(session: H2cSession): void {
    if (!this.sessions.delete(session)) return;
    if (!session.handshaken && !this.closed) this.failQueuedAfterHandshake(session);
    this.drain();
    this.stopSweepIfIdle();
    if (this.closed && this.sessions.size === 0) this.onAllClosed?.();
  }

  /**
   * A session closed before its handshake ended: the service is down or not speaking HTTP/2.
   * Calls queued behind that handshake fail now, as the call on it did, unless another session
   * can take them (a connect attempt per queued call would only repeat the failure).
   */
  private failQueuedAfterHandshake(session: H2cSession): void {
    for (const other of this.sessions) if (other.handshaken && !other.draining) return;
    for (const call of this.queue.splice(0)) {
      call.queuedAt = -1;
      call.fail(
        session.connectTimedOut
          ? new UpstreamError('upstream_timeout', 'ERR_CONNECT_TIMEOUT', 'connecting to the service timed out')
          : new UpstreamError('upstream_unavailable', 'ERR_CONNECT_FAILED', 'could not connect to the service'),
      );
    }
  }

  private ensureSweep(): void {
    if (this.sweep !== undefined) return;
    // One timer for every session's handshake and idle limits, every call's head and silence
    // limits and the queue's wait (a timer per stream costs per request).
    this.sweep = setInterval(() => {
      const now = performance.now();
      for (const session of this.sessions) session.expireIfStale(now);
      for (const call of this.inflight) call.expireIfStale(now, this.timeoutMs);
      // The queue is in arrival order: whoever waited past the timeout is at its head.
      while (this.queue.length > 0 && now - this.queue[0]!.queuedAt > this.timeoutMs) {
        const call = this.queue.shift()!;
        call.queuedAt = -1;
        call.fail(new UpstreamError('upstream_timeout', 'ERR_QUEUE_TIMEOUT', 'no stream to the service came free in time'));
      }
      this.stopSweepIfIdle();
    }, this.sweepEveryMs);
    this.sweep.unref();
  }

  private stopSweepIfIdle(): void {
    if (this.sweep !== undefined && this.sessions.size === 0 && this.queue.length === 0) {
      clearInterval(this.sweep);
      this.sweep = undefined;
    }
  }

  /** Sessions in use: for tests and metrics. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Sends GOAWAY on every session, lets streams in flight finish; resolves when all sessions are gone. */
  close(): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    this.closed = true;
    for (const call of this.queue.splice(0)) {
      call.queuedAt = -1;
      call.fail(new UpstreamError('upstream_unavailable', 'ERR_POOL_CLOSED', 'the upstream pool is closed'));
    }
    for (const session of this.sessions) {
      session.draining = true;
      session.session.close();
    }
    this.closing = this.sessions.size === 0 ? Promise.resolve() : new Promise((resolve) => (this.onAllClosed = resolve));
    return this.closing;
  }
}
