// Our HTTP/1.1 client for the service: a keep-alive pool of plain sockets (TCP or unix), one
// exchange at a time per connection, request bodies streamed with backpressure, answers read by
// the strict ResponseParser. It replaced undici on the forwarding path, where the proxy spends
// most of its time (bench/README.md: a bare proxy costs 22.8 µs of CPU per request this way,
// 28.9 µs through undici). A connection whose
// framing is in any doubt is closed, never reused, so one exchange's bytes can't reach another.
// An upgrade (WebSocket) is one more exchange here, so its head and answer follow the same rules:
// it goes on a connection of its own, which leaves the pool if the service switches.
import { connect, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { ResponseParser, type ResponseEvents } from './response-parser.ts';
import { requestLines } from './request-head.ts';
import { BAD_VALUE_WRITTEN } from './http-syntax.ts';
import type { DenyReason } from '../decision/denial.ts';

export type UpstreamFailure = Extract<DenyReason, 'upstream_unavailable' | 'upstream_timeout'>;

/** Why an exchange with the service failed, as a SPEC deny reason. */
export class UpstreamError extends Error {
  override readonly name = 'UpstreamError';
  readonly reason: UpstreamFailure;
  readonly code: string;

  constructor(reason: UpstreamFailure, code: string, message: string) {
    super(message);
    this.reason = reason;
    this.code = code;
  }
}

/** What a caller receives for one exchange. */
export interface UpstreamExchange {
  onHead(status: number, headers: string[]): void;
  /** Returns false to pause the service's body until `UpstreamCall.resume()`. */
  onData(chunk: Buffer): boolean;
  /** The answer is complete; `last` is its final body bytes, if they came with the end (one write instead of two). */
  onEnd(last: Buffer | undefined, trailers?: string[]): void; // trailers: HTTP/2 trailer fields (name, value…)
  /** `responseStarted`: the head was already delivered (the caller can only cut its answer). */
  onError(error: UpstreamError, responseStarted: boolean): void;
  /**
   * The service switched protocols (a call with `upgrade` only; to any other call a 101 is a broken
   * answer). The connection has left the pool: `socket` is the caller's, with no listeners of
   * ours, and `rest` is what was read after the 101 head (the new protocol's first bytes).
   */
  onUpgrade?(status: 101, headers: string[], socket: Socket, rest: Buffer): void;
}

export interface UpstreamPoolOptions {
  /** `http://host:port` or `unix:/path/to.sock`. */
  readonly url: string;
  /** Longest wait for the service's answer head, and longest silence while a body flows. */
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly connections: number;
  /** How long an idle connection is kept when the service sends no `Keep-Alive: timeout` hint. */
  readonly idleTimeoutMs?: number;
}

/** Methods a request may be sent again for (RFC 9110 9.2.2 idempotent methods). */
const RETRYABLE = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
/** A client that reads nothing holds the service's answer at most this long (like nginx's send_timeout). */
export const CLIENT_STALL_MS = 60_000;
const KEEP_ALIVE_HINT = /timeout=(\d+)/i;

/** One request to the service; lives until its answer ends or fails. */
export class UpstreamCall {
  readonly method: string;
  readonly path: string;
  /** Without any Content-Length or Transfer-Encoding: the pool writes the framing itself. */
  readonly headers: readonly string[];
  /**
   * The inbound body, or null when there is none: a stream, or the bytes already read whole (a
   * JSON-RPC route's body, read for its decision), sent with the head in one write.
   */
  readonly body: Readable | Buffer | null;
  /** The body's length, `CHUNKED` when unknown (sent chunk-framed), undefined when there is no body. */
  readonly bodyLength: number | undefined;
  readonly exchange: UpstreamExchange;
  /**
   * The protocol asked for (`websocket`), for an upgrade request: sent with `connection: upgrade`
   * on a connection of its own that is never reused, whatever the answer.
   */
  readonly upgrade: string | undefined;
  connection: UpstreamConnection | undefined;
  /** The request head, made once when dispatched (a retry sends the same). */
  head: string | undefined;
  /** While waiting for a connection: the pool it waits in and since when. */
  queuedIn: UpstreamPool | undefined;
  queuedAt = 0;
  aborted = false;
  retried = false;

  constructor(method: string, path: string, headers: readonly string[], body: Readable | Buffer | null, bodyLength: number | undefined, exchange: UpstreamExchange, upgrade?: string) {
    this.method = method;
    this.path = path;
    this.headers = headers;
    this.body = body;
    this.bodyLength = bodyLength;
    this.exchange = exchange;
    this.upgrade = upgrade;
  }

  /** The caller's client went away: drop the exchange (its connection can't be reused). */
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.queuedIn?.unqueue(this);
    this.connection?.socket.destroy();
  }

  /** The caller's client drained: read more of the service's body. */
  resume(): void {
    this.connection?.resumeReading();
  }
}

/** `bodyLength` of a body of unknown length, sent with chunked framing. */
export const CHUNKED = -1;

/** The request head for the service, or undefined if any part of it could not be sent safely. */
function requestHead(call: UpstreamCall, defaultHost: string): string | undefined {
  const lines = requestLines(call.method, call.path, call.headers, defaultHost);
  if (lines === undefined) return undefined;
  if (call.upgrade !== undefined) {
    // Hop-by-hop headers were dropped by the caller; an upgrade needs its own pair back, for this hop.
    // An upgrade request has no body (the front door refuses one): its head is all there is.
    return call.upgrade !== '' && !BAD_VALUE_WRITTEN.test(call.upgrade) ? lines + 'connection: upgrade\r\nupgrade: ' + call.upgrade + '\r\n\r\n' : undefined;
  }
  // The framing is ours alone: the caller's headers never carry Content-Length or Transfer-Encoding.
  if (call.bodyLength === CHUNKED) return lines + 'transfer-encoding: chunked\r\n\r\n';
  if (call.bodyLength !== undefined) return lines + 'content-length: ' + call.bodyLength + '\r\n\r\n';
  return lines + '\r\n';
}

class UpstreamConnection implements ResponseEvents {
  readonly socket: Socket;
  private readonly pool: UpstreamPool;
  private readonly parser: ResponseParser;
  call: UpstreamCall | undefined;
  private connected = false;
  /** The connection had served an earlier exchange before this one. */
  private wasReused = false;
  private headSeen = false;
  private bytesSeen = false;
  private completed = false;
  private bodySent = true;
  private timedOut = false;
  /** The service ended the connection cleanly (FIN); an answer read until close needs that. */
  private endedCleanly = false;
  private errored = false;
  /** Reading paused because our client is not keeping up. */
  private paused = false;
  private readonly connectStartedAt: number;
  /** Kept idle this long (the service's Keep-Alive hint can shorten it). */
  idleTimeoutMs: number;
  /** When the connection last made progress (performance.now()); the pool's sweep times it out. */
  lastActivity: number;
  private keepAliveSeen: string | undefined;
  /** The 101's headers, when the service switched protocols during this read. */
  private switched: string[] | undefined;
  /** Body bytes parsed in this read, delivered after it: with the end when they are the last. */
  private held: Buffer | undefined;
  private detachBody: (() => void) | undefined;
  /** Ours on the socket, kept so a switched connection can take off exactly these (Node has its own). */
  private readonly listeners: Readonly<Record<string, (chunk: Buffer) => void>>;

  constructor(pool: UpstreamPool, socket: Socket) {
    this.pool = pool;
    this.socket = socket;
    this.parser = new ResponseParser(this);
    this.idleTimeoutMs = pool.idleTimeoutMs;
    this.lastActivity = this.connectStartedAt = performance.now();
    socket.setNoDelay(true);
    this.listeners = {
      connect: () => {
        this.connected = true;
        this.lastActivity = performance.now();
      },
      data: (chunk: Buffer) => this.onSocketData(chunk),
      drain: () => {
        this.touch();
        const body = this.call?.body;
        if (body != null && !Buffer.isBuffer(body)) body.resume();
      },
      end: () => (this.endedCleanly = true),
      error: () => (this.errored = true), // 'close' follows and decides
      close: () => this.onSocketClose(),
    };
    for (const event in this.listeners) socket.on(event, this.listeners[event]!);
  }

  /** Progress on a connected socket (before it connects, only the connect timeout counts). */
  private touch(): void {
    if (this.connected) this.lastActivity = performance.now();
  }

  resumeReading(): void {
    this.paused = false;
    this.lastActivity = performance.now();
    this.socket.resume();
  }

  send(call: UpstreamCall): void {
    this.call = call;
    call.connection = this;
    this.headSeen = this.bytesSeen = this.completed = this.timedOut = this.paused = false;
    this.parser.reset(call.method, call.upgrade !== undefined && call.exchange.onUpgrade !== undefined);
    this.touch();
    const body = call.body;
    if (body === null) {
      this.socket.write(call.head!, 'latin1');
      this.bodySent = true;
    } else if (Buffer.isBuffer(body)) {
      // One segment for head and body: two writes would be two syscalls and, for the service,
      // two reads of one request.
      this.socket.cork();
      this.socket.write(call.head!, 'latin1');
      this.socket.write(body);
      this.socket.uncork();
      this.bodySent = true;
    } else {
      this.socket.write(call.head!, 'latin1');
      this.bodySent = false;
      this.streamBody(body, call.bodyLength === CHUNKED);
    }
  }

  private streamBody(body: Readable, chunked: boolean): void {
    const socket = this.socket;
    const onData = (chunk: Buffer): void => {
      if (chunk.length === 0) return; // an empty chunk would end a chunked body
      let ok: boolean;
      if (chunked) {
        socket.cork();
        socket.write(chunk.length.toString(16) + '\r\n', 'latin1');
        socket.write(chunk);
        ok = socket.write('\r\n', 'latin1');
        socket.uncork();
      } else {
        ok = socket.write(chunk);
      }
      this.touch();
      if (!ok) body.pause();
    };
    const onEnd = (): void => {
      detach();
      if (chunked) socket.write('0\r\n\r\n', 'latin1');
      this.bodySent = true;
    };
    // The client stopped sending mid-body: the service can't get a complete request.
    const onCut = (): void => {
      if (!this.bodySent) socket.destroy();
    };
    const detach = (): void => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('aborted', onCut);
      body.off('error', onCut);
      this.detachBody = undefined;
    };
    this.detachBody = detach;
    body.on('data', onData);
    body.on('end', onEnd);
    body.on('aborted', onCut);
    body.on('error', onCut);
  }

  onHead(status: number, headers: string[]): void {
    this.headSeen = true;
    for (let i = 0; i < headers.length; i += 2) {
      if (headers[i] === 'keep-alive' && headers[i + 1] !== this.keepAliveSeen) {
        // Usually the same value on every answer: parsed only when it changes.
        this.keepAliveSeen = headers[i + 1]!;
        const hint = KEEP_ALIVE_HINT.exec(this.keepAliveSeen);
        // Leave a second's margin so we never send on a connection the service is about to close.
        this.idleTimeoutMs = hint ? Math.min(this.pool.idleTimeoutMs, Math.max(100, Number(hint[1]) * 1000 - 1000)) : this.pool.idleTimeoutMs;
      }
    }
    const call = this.call!;
    if (!call.aborted) call.exchange.onHead(status, headers);
  }

  onBody(chunk: Buffer): void {
    if (this.held !== undefined) this.deliver(this.held);
    this.held = chunk;
  }

  private deliver(chunk: Buffer): void {
    const call = this.call!;
    if (!call.aborted && !call.exchange.onData(chunk)) {
      this.paused = true;
      this.socket.pause();
    }
  }

  /**
   * Called by the pool's sweep: a connect, answer or idle period that ran past its limit ends
   * here. While our client is not reading, the service is not to blame: a longer limit applies.
   */
  expireIfStale(now: number): void {
    if (!this.connected) {
      if (now - this.connectStartedAt < this.pool.connectTimeoutMs) return;
    } else {
      // Waiting on our client (it reads our answer slowly, or has not sent its whole body yet) is
      // not the service's silence: the longer client limit applies.
      const waitingOnClient = this.paused || !this.bodySent;
      const limit = this.call === undefined ? this.idleTimeoutMs : waitingOnClient ? Math.max(CLIENT_STALL_MS, this.pool.timeoutMs) : this.pool.timeoutMs;
      if (now - this.lastActivity < limit) return;
    }
    this.timedOut = true;
    this.socket.destroy();
  }

  onComplete(): void {
    this.completed = true;
  }

  onSwitch(headers: string[]): void {
    this.switched = headers;
  }

  /**
   * The service switched protocols: the connection leaves the pool (no sweep, no listener of
   * ours) and its socket goes to the caller with what was read after the 101 head.
   */
  private handOver(call: UpstreamCall, headers: string[], rest: Buffer): void {
    this.call = undefined;
    call.connection = undefined;
    for (const event in this.listeners) this.socket.off(event, this.listeners[event]!);
    this.pool.remove(this);
    if (call.aborted) this.socket.destroy();
    else call.exchange.onUpgrade!(101, headers, this.socket, rest);
  }

  private onSocketData(chunk: Buffer): void {
    const call = this.call;
    if (call === undefined) {
      // Bytes nobody asked for: the service is out of step with us.
      this.socket.destroy();
      return;
    }
    this.bytesSeen = true;
    this.lastActivity = performance.now();
    let consumed: number;
    try {
      consumed = this.parser.execute(chunk);
    } catch (error) {
      this.held = undefined;
      this.fail(new UpstreamError('upstream_unavailable', 'ERR_BAD_RESPONSE', (error as Error).message));
      this.socket.destroy();
      return;
    }
    if (this.switched !== undefined) {
      this.handOver(call, this.switched, chunk.subarray(consumed));
      return;
    }
    const last = this.held;
    this.held = undefined;
    if (!this.completed) {
      if (last !== undefined) this.deliver(last);
      return;
    }
    // Complete: hand the connection back only if nothing about its framing is in doubt.
    // An upgrade's connection never is: the service was asked to switch, whatever it answered.
    const reusable = this.parser.keepAlive && consumed === chunk.length && this.bodySent && !this.pool.closed && call.upgrade === undefined;
    this.call = undefined;
    call.connection = undefined;
    if (this.detachBody) {
      // The service answered before the whole body was sent: stop sending, drain the client's rest.
      this.detachBody();
      (call.body as Readable).resume(); // only a streamed body is ever detached
    }
    if (!call.aborted) call.exchange.onEnd(last);
    if (reusable) {
      this.paused = false;
      this.socket.resume();
      this.pool.release(this);
    } else {
      this.socket.destroy();
    }
  }

  private onSocketClose(): void {
    this.pool.remove(this);
    const call = this.call;
    if (call === undefined) return;
    // An answer without a length ends with the connection, but only a clean end (FIN), not a reset.
    if (call.aborted || (this.parser.readsUntilClose && this.endedCleanly && !this.errored && !this.timedOut)) {
      this.call = undefined;
      call.connection = undefined;
      this.detachBody?.();
      if (call.aborted) return;
      this.parser.finish();
      call.exchange.onEnd(undefined);
      return;
    }
    // A kept-alive connection the service closed just as we sent: nothing was answered, so an
    // idempotent request without a body is sent again, once, on a new connection.
    if (this.wasReused && !this.bytesSeen && !this.timedOut && call.body === null && !call.retried && RETRYABLE.has(call.method)) {
      this.call = undefined;
      call.connection = undefined;
      call.retried = true;
      this.pool.dispatch(call);
      return;
    }
    this.fail(
      this.timedOut
        ? new UpstreamError('upstream_timeout', this.connected ? 'ERR_UPSTREAM_TIMEOUT' : 'ERR_CONNECT_TIMEOUT', this.connected ? 'the service did not answer in time' : 'connecting to the service timed out')
        : new UpstreamError('upstream_unavailable', this.connected ? 'ERR_CONNECTION_CLOSED' : 'ERR_CONNECT_FAILED', this.connected ? 'the service closed or reset the connection mid-exchange' : 'could not connect to the service'),
    );
  }

  private fail(error: UpstreamError): void {
    const call = this.call;
    if (call && !call.aborted) {
      this.call = undefined;
      call.connection = undefined;
      this.detachBody?.();
      call.exchange.onError(error, this.headSeen);
    }
  }

  markIdle(): void {
    this.wasReused = true;
    this.lastActivity = performance.now();
  }

  /**
   * Not to be used again: idle past its limit (the service may be closing it right now), or
   * already ended or destroyed (by the sweep, or the service's FIN) while its 'close' is pending.
   */
  unusable(now: number): boolean {
    return this.socket.destroyed || this.endedCleanly || now - this.lastActivity >= this.idleTimeoutMs;
  }
}

export class UpstreamPool {
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly hostHeader: string;
  closed = false;
  private readonly maxConnections: number;
  private readonly target: { readonly host: string; readonly port: number } | { readonly path: string };
  private readonly idle: UpstreamConnection[] = [];
  private readonly queue: UpstreamCall[] = [];
  private readonly connections = new Set<UpstreamConnection>();
  /**
   * Connections opened for an upgrade, until it is answered. Not counted against `connections`:
   * a switched one becomes a tunnel that lives as long as its WebSocket, and a few of those must
   * not take every slot from plain requests (nor do they once switched: they leave the pool).
   */
  private readonly upgrades = new Set<UpstreamConnection>();
  private onAllClosed: (() => void) | undefined;
  private closing: Promise<void> | undefined;
  /** Requests waiting for a connection, at most; beyond that they fail at once (502). */
  private readonly maxQueued: number;
  /** One timer for every connection's connect, answer and idle limits (a timer per socket costs per request). */
  private sweep: NodeJS.Timeout | undefined;
  private readonly sweepEveryMs: number;

  constructor(options: UpstreamPoolOptions) {
    this.timeoutMs = options.timeoutMs;
    this.connectTimeoutMs = options.connectTimeoutMs;
    this.idleTimeoutMs = options.idleTimeoutMs ?? 4_000;
    this.maxConnections = Math.max(1, options.connections);
    this.maxQueued = Math.max(1024, 16 * this.maxConnections);
    this.sweepEveryMs = Math.min(1000, Math.max(10, Math.min(this.timeoutMs, this.connectTimeoutMs) / 8));
    if (options.url.startsWith('unix:')) {
      this.target = { path: options.url.slice('unix:'.length) };
      this.hostHeader = 'localhost';
    } else {
      const url = new URL(options.url);
      // The service runs beside the sidecar (SPEC: http://host:port or a unix socket); never send in the clear what was meant for TLS.
      if (url.protocol !== 'http:') throw new Error(`upstream URL must be http://host:port or unix:/path, not ${url.protocol}`);
      this.target = { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 80) };
      this.hostHeader = url.host;
    }
  }

  /** Sends the call now, on an idle or new connection, or queues it until one is free. */
  dispatch(call: UpstreamCall): void {
    if (this.closed) {
      call.exchange.onError(new UpstreamError('upstream_unavailable', 'ERR_POOL_CLOSED', 'the upstream pool is closed'), false);
      return;
    }
    // Checked before a connection is taken: a request that cannot be sent costs no socket.
    call.head ??= requestHead(call, this.hostHeader);
    if (call.head === undefined) {
      call.exchange.onError(new UpstreamError('upstream_unavailable', 'ERR_INVALID_HEADER', 'the request has a method, target or header that cannot be sent'), false);
      return;
    }
    if (call.upgrade !== undefined) {
      // A fresh connection, never an idle one, never queued: it will not come back to the pool.
      const fresh = new UpstreamConnection(this, this.connectSocket());
      this.upgrades.add(fresh);
      this.ensureSweep();
      fresh.send(call);
      return;
    }
    const connection = this.takeIdle();
    if (connection !== undefined) {
      connection.send(call);
    } else if (this.connections.size < this.maxConnections) {
      this.newConnection().send(call);
    } else if (this.queue.length >= this.maxQueued) {
      call.exchange.onError(new UpstreamError('upstream_unavailable', 'ERR_QUEUE_FULL', 'too many requests are waiting for a connection to the service'), false);
    } else {
      call.queuedAt = performance.now();
      call.queuedIn = this;
      this.queue.push(call);
      this.ensureSweep();
    }
  }

  /**
   * The most recently used idle connection still fit to send on. Checked here, not only by the
   * sweep: the sweep runs every so often (up to a second), and a connection it destroys stays in
   * `idle` until its 'close' event. Without this a POST went out on a connection idle past its
   * limit or already destroyed, and failed with 502 (never retried: it is not idempotent).
   */
  private takeIdle(): UpstreamConnection | undefined {
    let connection = this.idle.pop();
    if (connection === undefined) return undefined;
    const now = performance.now();
    while (connection !== undefined && connection.unusable(now)) {
      connection.socket.destroy(); // 'close' removes it from `connections`
      connection = this.idle.pop();
    }
    return connection;
  }

  /** An aborted call leaves the queue at once (it must not hold its request until a connection frees). */
  unqueue(call: UpstreamCall): void {
    const at = this.queue.indexOf(call);
    if (at !== -1) this.queue.splice(at, 1);
    call.queuedIn = undefined;
    this.stopSweepIfIdle();
  }

  /** A new socket to the service (TCP or unix). */
  private connectSocket(): Socket {
    return connect(this.target as { host: string; port: number });
  }

  private newConnection(): UpstreamConnection {
    const connection = new UpstreamConnection(this, this.connectSocket());
    this.connections.add(connection);
    this.ensureSweep();
    return connection;
  }

  private ensureSweep(): void {
    if (this.sweep !== undefined) return;
    this.sweep = setInterval(() => {
      const now = performance.now();
      for (const c of this.connections) c.expireIfStale(now);
      for (const c of this.upgrades) c.expireIfStale(now);
      // The queue is in arrival order: whoever waited past the timeout is at its head.
      while (this.queue.length > 0 && now - this.queue[0]!.queuedAt > this.timeoutMs) this.failQueued(this.queue.shift()!);
      this.stopSweepIfIdle();
    }, this.sweepEveryMs);
    this.sweep.unref();
  }

  private stopSweepIfIdle(): void {
    if (this.sweep !== undefined && this.connections.size === 0 && this.upgrades.size === 0 && this.queue.length === 0) {
      clearInterval(this.sweep);
      this.sweep = undefined;
    }
  }

  private failQueued(call: UpstreamCall): void {
    call.queuedIn = undefined;
    call.exchange.onError(new UpstreamError('upstream_timeout', 'ERR_QUEUE_TIMEOUT', 'no connection to the service came free in time'), false);
  }

  private nextQueued(): UpstreamCall | undefined {
    const call = this.queue.shift();
    if (call !== undefined) call.queuedIn = undefined;
    return call;
  }

  release(connection: UpstreamConnection): void {
    connection.markIdle();
    const next = this.nextQueued();
    if (next !== undefined) connection.send(next);
    else this.idle.push(connection);
  }

  remove(connection: UpstreamConnection): void {
    // An upgrade's connection held no slot: its end frees none for the queue.
    if (!this.upgrades.delete(connection)) {
      this.connections.delete(connection);
      const at = this.idle.indexOf(connection);
      if (at !== -1) this.idle.splice(at, 1);
      if (this.queue.length > 0 && !this.closed) this.newConnection().send(this.nextQueued()!);
    }
    this.stopSweepIfIdle();
    if (this.closed && this.connections.size === 0 && this.upgrades.size === 0) this.onAllClosed?.();
  }

  /** Closes idle connections now and busy ones when their exchange ends; resolves when all are gone. */
  close(): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    this.closed = true;
    for (const call of this.queue.splice(0)) {
      call.queuedIn = undefined;
      call.exchange.onError(new UpstreamError('upstream_unavailable', 'ERR_POOL_CLOSED', 'the upstream pool is closed'), false);
    }
    for (const connection of this.idle.splice(0)) connection.socket.destroy();
    this.closing = this.connections.size === 0 && this.upgrades.size === 0 ? Promise.resolve() : new Promise((resolve) => (this.onAllClosed = resolve));
    return this.closing;
  }
}
