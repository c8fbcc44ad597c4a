// One HTTP/1.1 request's body, as the stream the forwarding clients and the JSON-RPC reader take
// (they read HTTP/2 streams the same way): the connection reader's views pushed in, its
// back-pressure passed back to the connection (a body pushed faster than the service takes it
// pauses the reader, then the socket), and the events Node's IncomingMessage gives a body cut
// short: 'aborted', then 'close' (no 'error': nobody must be made to listen for one).
import { Readable } from 'node:stream';

/** What the body asks of its connection. */
export interface BodySource {
  /** The consumer wants more: read on. */
  resumeBody(): void;
  /** The consumer is full: stop reading until `resumeBody`. */
  pauseBody(): void;
}

export class RequestBody extends Readable {
  private readonly source: BodySource;
  /** The whole body arrived. */
  complete = false;

  constructor(source: BodySource) {
    super();
    this.source = source;
  }

  override _read(): void {
    this.source.resumeBody();
  }

  /** A piece of the body, in order. */
  deliver(data: Buffer): void {
    if (!this.push(data)) this.source.pauseBody();
  }

  finish(): void {
    this.complete = true;
    this.push(null);
  }

  /** The client went away (or the request was refused) before the body was whole. */
  abort(): void {
    if (this.complete || this.destroyed) return;
    this.emit('aborted');
    this.destroy();
  }
}
