// One answer on an HTTP/1.1 client connection, written straight to the TLS socket: the head built
// once as a string (status line, the relayed or our own fields, then what Node's ServerResponse
// adds: Date, Connection and Keep-Alive, Transfer-Encoding: chunked when there is no length), the
// body framed by it, and a head and body that are ready together sent as one corked write (one
// TLS record, one syscall: issue 15 item 3). The connection decides what follows (the next
// request, or the close) once the answer has ended.
const { STATUS_CODES } = process.getBuiltinModule('node:http'); // not an ESM import: that loads Node's bundled undici (src/admin/admin-server.ts says why)
import type { TLSSocket } from 'node:tls';

/** Who is told when the answer is over (the exchange's reply). */
export interface WriterListener {
  /** `clean`: the whole answer was written; else it was cut, or the connection went first. */
  answerDone(clean: boolean): void;
  /** A write answered false; the client has taken what was written: write on. */
  answerDrained(): void;
}

/** What the writer tells its connection. */
export interface AnswerOwner {
  /** The answer's last byte is written (or it was cut): the connection reads on or closes. */
  answerEnded(writer: ResponseWriter, clean: boolean): void;
}

let dateSecond = -1;
let dateLine = '';

/** `Date: …\r\n` for this second (RFC 9110 6.6.1), made once a second as Node does. */
function currentDateLine(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateLine = `Date: ${new Date(now).toUTCString()}\r\n`;
  }
  return dateLine;
}

const LAST_CHUNK = '0\r\n\r\n';

/** Bytes a queued answer (behind another on its connection) holds before it says it is full. */
const QUEUED_BYTES = 64 * 1024;

export class ResponseWriter {
  readonly socket: TLSSocket;
  listener: WriterListener | undefined;
  private readonly owner: AnswerOwner;
  /** HEAD: the head says what a GET would get; no body follows (RFC 9110 9.3.2). */
  private readonly head: boolean;
  /** HTTP/1.0 client: no chunked framing, an answer without a length ends with the connection. */
  private readonly http10: boolean;
  private readonly keepAliveLine: string;
  /** The connection stays open after this answer. */
  keepAlive: boolean;
  headersSent = false;
  ended = false;
  /**
   * Behind another answer on its connection (a pipelined request): what it writes is held, in
   * order, until the answers before it have ended (RFC 9112 9.3.2: answers in request order).
   */
  private queued: (string | Buffer)[] | undefined;
  private queuedBytes = 0;
  /** The head, made but not yet written (sent with the first body bytes). */
  private pendingHead: string | undefined;
  private chunked = false;
  private bodyless = false;
  /** A write said "full": the listener is told when it may write again. */
  private full = false;
  private onSocketDrain: (() => void) | undefined;
  /** Cut while queued: the connection is cut when its turn comes. */
  private cutOnTurn = false;

  constructor(socket: TLSSocket, owner: AnswerOwner, head: boolean, http10: boolean, keepAlive: boolean, keepAliveLine: string, queued: boolean) {
    this.socket = socket;
    this.owner = owner;
    this.head = head;
    this.http10 = http10;
    this.keepAlive = keepAlive;
    this.keepAliveLine = keepAliveLine;
    if (queued) this.queued = [];
  }

  /** `100 Continue` (RFC 9110 10.1.1): the client may send its body now. */
  writeContinue(): void {
    if (!this.headersSent && !this.socket.destroyed) this.out('HTTP/1.1 100 Continue\r\n\r\n');
  }

  /**
   * The status line and fields (name, value…: already free of hop-by-hop fields). Sent with the
   * first body bytes or the end, whichever comes first.
   */
  writeHead(status: number, fields: readonly string[]): void {
    if (this.headersSent) return;
    this.headersSent = true;
    let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
    let length = false;
    let date = false;
    for (let i = 0; i < fields.length; i += 2) {
      const name = fields[i]!;
      if (name.length === 14 && name.toLowerCase() === 'content-length') length = true;
      else if (name.length === 4 && name.toLowerCase() === 'date') date = true;
      head += `${name}: ${fields[i + 1]!}\r\n`;
    }
    if (!date) head += currentDateLine();
    this.bodyless = this.head || status === 204 || status === 304 || status < 200;
    if (!this.bodyless && !length) {
      // No length: chunked for HTTP/1.1; for HTTP/1.0 the end of the connection ends the body.
      if (this.http10) this.keepAlive = false;
      else this.chunked = true;
    }
    head += this.keepAlive ? this.keepAliveLine : 'Connection: close\r\n';
    if (this.chunked) head += 'Transfer-Encoding: chunked\r\n';
    this.pendingHead = head + '\r\n';
  }

  /** Body bytes; false when the client is not keeping up (the listener's answerDrained says when it has). */
  write(chunk: Buffer): boolean {
    if (this.ended || this.socket.destroyed) return true;
    if (this.bodyless || chunk.length === 0) {
      if (this.pendingHead !== undefined) this.takeHead();
      return this.mayGoOn(true);
    }
    const cork = this.queued === undefined;
    if (cork) this.socket.cork();
    if (this.pendingHead !== undefined) this.takeHead();
    let ok: boolean;
    if (this.chunked) {
      this.out(chunk.length.toString(16) + '\r\n');
      this.out(chunk);
      ok = this.out('\r\n');
    } else {
      ok = this.out(chunk);
    }
    if (cork) this.socket.uncork();
    return this.mayGoOn(ok);
  }

  /** The last bytes (if any), then the answer's end: head, body and end in one write when all are here. */
  end(last?: Buffer | string): void {
    if (this.ended) return;
    this.ended = true;
    if (!this.socket.destroyed) {
      const cork = this.queued === undefined;
      if (cork) this.socket.cork();
      if (this.pendingHead !== undefined) this.takeHead();
      if (last !== undefined && last.length > 0 && !this.bodyless) {
        if (this.chunked) {
          this.out(Buffer.byteLength(last).toString(16) + '\r\n');
          this.out(last);
          this.out('\r\n' + LAST_CHUNK);
        } else {
          this.out(last);
        }
      } else if (this.chunked) {
        this.out(LAST_CHUNK);
      }
      if (cork) this.socket.uncork();
    }
    // A queued answer is over for its listener now; for its connection, once it has been sent.
    this.listener?.answerDone(true);
    if (this.queued === undefined) this.owner.answerEnded(this, true);
  }

  /** The answer cannot be finished: the connection closes without its end (the client sees it was cut). */
  destroy(): void {
    const first = !this.ended;
    this.ended = true;
    if (this.queued !== undefined) {
      // Not its turn yet: the answers before it are whole and go out first (as Node's
      // ServerResponse.destroy waited for its socket), then the cut; what it held is dropped.
      this.queued = [];
      this.queuedBytes = 0;
      this.cutOnTurn = true;
      if (first) this.listener?.answerDone(false);
      return;
    }
    this.socket.destroy();
    if (first) {
      this.owner.answerEnded(this, false);
      this.listener?.answerDone(false);
    }
  }

  /** The connection is closing before this answer's turn: it is never sent; the exchange is over. */
  abandon(): void {
    if (this.ended && this.queued === undefined) return;
    const first = !this.ended;
    this.ended = true;
    this.queued = undefined;
    if (first) this.listener?.answerDone(false);
  }

  /** The answers before this one have ended: what it holds goes out now, then what it writes. */
  promote(): void {
    const queued = this.queued;
    if (queued === undefined) return;
    this.queued = undefined;
    this.queuedBytes = 0;
    if (this.cutOnTurn) {
      // The end of the answer before it may still be in the socket's buffer: it goes out, then
      // the close, with nothing of this one.
      this.socket.destroySoon();
      this.owner.answerEnded(this, false);
      return;
    }
    const socket = this.socket;
    let ok = true;
    if (!socket.destroyed && queued.length > 0) {
      socket.cork();
      for (const part of queued) ok = typeof part === 'string' ? socket.write(part, 'latin1') : socket.write(part);
      socket.uncork();
    }
    if (this.ended) {
      this.owner.answerEnded(this, true);
      return;
    }
    if (this.full) {
      this.full = false;
      if (this.mayGoOn(ok)) this.listener?.answerDrained();
    }
  }

  private takeHead(): void {
    this.out(this.pendingHead!);
    this.pendingHead = undefined;
  }

  /** Written, or held while queued; false: full (the socket's buffer, or what a queued answer may hold). */
  private out(data: string | Buffer): boolean {
    const queued = this.queued;
    if (queued === undefined) return typeof data === 'string' ? this.socket.write(data, 'latin1') : this.socket.write(data);
    queued.push(data);
    this.queuedBytes += data.length;
    return this.queuedBytes < QUEUED_BYTES;
  }

  /** `ok` as a write's answer; when full, the listener is told once it may write again. */
  private mayGoOn(ok: boolean): boolean {
    if (ok) return true;
    if (this.full) return false; // already waiting
    this.full = true;
    if (this.queued === undefined) {
      this.onSocketDrain ??= () => {
        this.full = false;
        this.listener?.answerDrained();
      };
      this.socket.once('drain', this.onSocketDrain);
    }
    return false;
  }
}
