// One HTTP/1.1 client connection, read with our own parser (connection-reader.ts) in place of
// Node's HTTP server (issue 15 item 3: Node's server costs a few µs and several objects per
// request more than reading requests by hand). It keeps what Node's server did:
// - pipelined requests are read and started as they come, their answers sent in request order
//   (a later answer is held by its ResponseWriter until those before it have ended), at most
//   MAX_PIPELINED at once: past that the reader pauses, then the socket (TCP pushes back);
// - anything refused while answers are still going out (pipelined requests read before it), or
//   an upgrade pipelined behind a request, lets those answers finish and then closes the
//   connection, unanswered: a 400 must never be spliced into, or read as, another answer; nothing
//   after a request that closes the connection is read (RFC 9112 9.6);
// - limits.headersTimeout from a head's first byte (from the handshake, for the first request)
//   until the head is whole: past it the client gets 400 `bad_request` and the close;
//   limits.idleTimeout with no request open and nothing received: the close;
// - a head the parser refuses is answered 400/431 (failure.ts) and the connection closes.
// The proxy's sweep (Http1Connections) checks the two timeouts, one timer for every connection.
import type { TLSSocket } from 'node:tls';
import { ConnectionReader, type ReaderSink } from './connection-reader.ts';
import type { Http1Failure } from './failure.ts';
import type { HeadLimits } from './head-parser.ts';
import type { RequestHead } from './request-head.ts';
import { RequestBody, type BodySource } from './request-body.ts';
import { ResponseWriter, type AnswerOwner } from './response-writer.ts';

/** Why a connection is refused before a request could be made of it. */
export type Http1Refused = Http1Failure['error'] | 'timeout' | 'expectation';

/** What the connection hands the proxy: one shared object for every connection. */
export interface Http1Handler<C> {
  /** A request head: `body` is null without one; `writer` takes its answer. */
  request(connection: Http1Connection<C>, head: RequestHead, body: RequestBody | null, writer: ResponseWriter): void;
  /** An upgrade head: the socket is the tunnel's from now on; `firstBytes` came after the head. */
  upgrade(connection: Http1Connection<C>, head: RequestHead, socket: TLSSocket, firstBytes: Buffer): void;
  /**
   * Counts and logs a refusal the connection answers itself, and gives the answer (undefined when
   * none is written: nobody is left to read it, or another answer is going out).
   */
  refused(connection: Http1Connection<C>, refusal: Http1Refused, detail: string, answerable: boolean): string | undefined;
  /** The socket has closed (the connection's only 'close' listener: no other is needed per socket). */
  closed(connection: Http1Connection<C>): void;
  /** The proxy is shutting down: answers say `Connection: close`. */
  readonly draining: boolean;
}

export interface Http1Limits extends HeadLimits {
  readonly headersTimeoutMs: number;
  readonly idleTimeoutMs: number;
}

/** Requests of one connection started and not yet answered, at most (pipelining depth). */
export const MAX_PIPELINED = 16;

const EMPTY = Buffer.alloc(0);

export class Http1Connection<C> implements ReaderSink, BodySource, AnswerOwner {
  readonly socket: TLSSocket;
  /** The proxy's per-connection state (the peer, its identity checks). */
  readonly client: C;
  private readonly handler: Http1Handler<C>;
  private readonly reader: ConnectionReader;
  private readonly limits: Http1Limits;
  private readonly keepAliveLine: string;
  /** Answers not yet ended, in request order: the first writes to the socket, the rest wait. */
  private readonly writers: ResponseWriter[] = [];
  /** The body being read (of the last head), until it is whole. */
  private body: RequestBody | null = null;
  /** When the head being read began (performance.now()), or -1 while none is. */
  private headSince: number;
  /** No head read yet: the first one's clock runs from the handshake. */
  private fresh = true;
  /** When the connection opened or an answer last ended: the idle clock. */
  private lastActive: number;
  /** Closing: nothing more is read or answered. */
  private closing = false;
  /** Our end is sent (the socket is destroyed once it has gone). */
  private ending = false;
  private bodyPaused = false;
  private depthPaused = false;
  /** A chunk the reader could not take while paused and full: pushed again on resume. */
  private overflow: Buffer | undefined;
  private readonly onData = (chunk: Buffer): void => this.push(chunk);
  private readonly onSocketEndListener = (): void => this.onSocketEnd();

  constructor(socket: TLSSocket, client: C, limits: Http1Limits, handler: Http1Handler<C>) {
    this.socket = socket;
    this.client = client;
    this.limits = limits;
    this.handler = handler;
    this.reader = new ConnectionReader(limits, this);
    // As Node's server says it (lib/_http_outgoing.js): clients take the hint and do not send on
    // a connection about to be closed.
    this.keepAliveLine = limits.idleTimeoutMs >= 1000 ? `Connection: keep-alive\r\nKeep-Alive: timeout=${Math.floor(limits.idleTimeoutMs / 1000)}\r\n` : 'Connection: keep-alive\r\n';
    this.headSince = this.lastActive = performance.now();
    socket.on('data', this.onData);
    socket.on('end', this.onSocketEndListener);
    socket.on('error', () => socket.destroy()); // a reset or TLS error: 'close' follows
    socket.on('close', () => this.onClose());
  }

  /** Called by the sweep: the head or idle limit passed. */
  expireIfStale(now: number): void {
    if (this.closing) return;
    if (this.headSince >= 0) {
      if (now - this.headSince >= this.limits.headersTimeoutMs) this.refuse('timeout', 'the request head did not arrive within limits.headersTimeout');
    } else if (this.writers.length === 0 && this.body === null && now - this.lastActive >= this.limits.idleTimeoutMs) {
      this.socket.destroy();
    }
  }

  /** Graceful stop: an idle connection closes now; one with a request open after its answer. */
  closeIfIdle(): void {
    if (this.writers.length === 0 && this.body === null && this.reader.pendingBytes === 0 && this.overflow === undefined) {
      // The last answer may still be in the socket's buffer (a slow reader): it goes out, then
      // the close; limits.shutdownTimeout bounds the wait.
      this.closing = true;
      this.closeAfterWrites();
    }
  }

  // ---- bytes in ------------------------------------------------------------------------------

  private push(chunk: Buffer): void {
    // No idle clock here: bytes that open nothing (empty lines between requests, RFC 9112 2.2,
    // which the reader skips) must not hold an idle connection past limits.idleTimeout, as
    // Node's socket timeout let them; bytes that open a head, a request or a body stop the clock.
    const result = this.reader.push(chunk);
    if (result === 'overflow') {
      // Held bytes are at their bound: TCP holds the rest until the reader goes on.
      this.overflow = chunk;
      this.socket.pause();
    }
    this.clockHead();
  }

  /** A head partly read (and the reader not held back by us) runs the head clock. */
  private clockHead(): void {
    if (this.reader.partialHead && !this.reader.isPaused) {
      if (this.headSince < 0) this.headSince = performance.now();
    } else if (!this.fresh) {
      this.headSince = -1;
    }
  }

  private onSocketEnd(): void {
    if (this.closing) return;
    const failed = this.reader.finish();
    if (failed !== undefined) {
      this.refuse(failed.error, failed.detail);
      return;
    }
    // The client will send nothing more (as Node's server, httpAllowHalfOpen off): the requests
    // open are abandoned, and the connection closes.
    this.closing = true;
    this.body?.abort();
    this.body = null;
    if (this.writers.length === 0) this.socket.destroy();
    else this.closeAfterWrites();
  }

  private onClose(): void {
    this.closing = true;
    this.body?.abort();
    this.body = null;
    for (const writer of this.writers.splice(0)) writer.abandon();
    this.handler.closed(this);
  }

  // ---- ReaderSink ----------------------------------------------------------------------------

  onHead(head: RequestHead): void {
    if (this.closing) {
      // Read in the same chunk as what closed it: never started.
      this.reader.pause();
      return;
    }
    this.fresh = false;
    this.headSince = -1;
    if (head.upgrade) {
      // From here the socket's bytes and end are the tunnel's (our 'close' and 'error' listeners stay).
      this.socket.off('data', this.onData);
      this.socket.off('end', this.onSocketEndListener);
      if (this.writers.length > 0) {
        // Behind an answer still going out, its 101 or refusal would be spliced into that answer.
        this.refuse('bad_request', 'an upgrade pipelined behind a request still being answered');
        return;
      }
      // The bytes after the head are the new protocol's: the socket leaves us, paused until the
      // tunnel (or the refusal) takes it.
      this.closing = true;
      this.socket.pause();
      const rest = this.reader.takeUpgraded();
      this.handler.upgrade(this, head, this.socket, rest.length === 0 ? EMPTY : rest.length === 1 ? rest[0]! : Buffer.concat(rest));
      return;
    }
    if (head.expect === 'other') {
      // RFC 9110 10.1.1: an expectation we cannot meet is answered 417, and nothing more is read.
      this.refuse('expectation', 'the request has an Expect other than 100-continue');
      return;
    }
    // After a request that closes the connection the reader reads no other head (RFC 9112 9.6).
    const keepAlive = head.keepAlive && !this.handler.draining;
    const writer = new ResponseWriter(this.socket, this, head.method === 'HEAD', head.version === 10, keepAlive, this.keepAliveLine, this.writers.length > 0);
    this.writers.push(writer);
    const body = head.framing === 'chunked' || head.contentLength > 0 ? new RequestBody(this) : null;
    this.body = body;
    if (this.writers.length >= MAX_PIPELINED) {
      this.depthPaused = true;
      this.reader.pause();
    }
    this.handler.request(this, head, body, writer);
  }

  onBody(data: Buffer): void {
    this.body?.deliver(data);
  }

  onEnd(): void {
    const body = this.body;
    this.body = null;
    this.lastActive = performance.now(); // a body read after its answer ended (dropped) ends now
    body?.finish();
  }

  onStop(stop: Http1Failure): void {
    this.refuse(stop.error, stop.detail);
  }

  // ---- BodySource ----------------------------------------------------------------------------

  resumeBody(): void {
    if (!this.bodyPaused) return;
    this.bodyPaused = false;
    this.resumeReading();
  }

  pauseBody(): void {
    this.bodyPaused = true;
    this.reader.pause();
  }

  // ---- AnswerOwner ---------------------------------------------------------------------------

  answerEnded(writer: ResponseWriter, clean: boolean): void {
    const writers = this.writers;
    if (writers[0] !== writer) {
      // Destroyed while queued: the connection is going anyway.
      const at = writers.indexOf(writer);
      if (at !== -1) writers.splice(at, 1);
      return;
    }
    writers.shift();
    this.lastActive = performance.now();
    if (!clean) {
      // Cut: the connection goes (at once, or once what was written before it has gone); nothing
      // more is read or started.
      this.closing = true;
      return;
    }
    if (this.socket.destroyed) return;
    if (!writer.keepAlive && !this.closing) {
      // RFC 9112 9.6: the answer that says close is the last: requests read after it are dropped.
      this.closing = true;
      this.body?.abort();
      this.body = null;
      for (const later of writers.splice(0)) later.abandon();
    }
    if (writers.length === 0 && this.body !== null && !this.body.readableDidRead) {
      // Its request's body (the last head's) is still coming and nobody read it (a refusal): as
      // Node's server did (resOnFinish → req._dump), it is read and dropped, so the request after
      // it is read; else the paused reader would hold the connection, past idleTimeout, forever.
      this.body.resume();
    }
    if (writers.length > 0) {
      // The next answer's turn: what it holds goes out (and, if it had ended, the one after it).
      writers[0]!.promote();
    } else if (this.closing) {
      this.closeAfterWrites();
      return;
    }
    if (this.depthPaused && !this.closing && writers.length < MAX_PIPELINED) {
      // A request's place came free: the next one is read (one at a time, not once all 16 are answered).
      this.depthPaused = false;
      this.resumeReading();
    }
  }

  // ---- closing -------------------------------------------------------------------------------

  private resumeReading(): void {
    if (this.closing || this.bodyPaused || this.depthPaused) return;
    const result = this.reader.resume();
    if (result !== 'stopped') {
      const overflow = this.overflow;
      if (overflow !== undefined && !this.reader.isPaused) {
        this.overflow = undefined;
        this.socket.resume();
        this.push(overflow);
        return;
      }
    }
    this.clockHead();
  }

  /**
   * Answers a refusal and closes. With answers still going out (pipelined requests read before
   * it), those finish, whole and in order, and then the connection closes: the refusal gets no
   * answer of its own, which would come after theirs as if it answered some other request, and
   * nothing after it is read.
   */
  private refuse(refusal: Http1Refused, detail: string): void {
    if (this.closing) return;
    const pending = this.writers.length > 0;
    const answerable = !pending && refusal !== 'bytes_after_close' && this.socket.writable && !this.ending;
    this.closing = true;
    this.body?.abort();
    this.body = null;
    const answer = this.handler.refused(this, refusal, detail, answerable);
    if (pending || (refusal === 'bytes_after_close' && this.ending)) {
      // answerEnded closes once the last of them has ended.
      this.socket.pause();
    } else if (answer !== undefined) {
      this.ending = true;
      this.socket.end(answer, 'latin1');
      this.socket.destroySoon();
    } else {
      this.socket.destroy();
    }
  }

  /** Our end, after what was written; then the socket is destroyed (Node's destroySoon). */
  private closeAfterWrites(): void {
    if (this.ending) return;
    this.ending = true;
    this.socket.destroySoon();
  }
}
