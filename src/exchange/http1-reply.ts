// The answer to an HTTP/1.1 request: the service's response relayed into the connection's
// ResponseWriter with backpressure both ways, a refusal in the SPEC's JSON format, and a cut that
// closes the connection without the final chunk (SPEC "Streams": the client must see the answer
// did not end). One answer at a time per connection (http1/http1-connection.ts), so the writer
// itself says when the client has gone.
import { denial, type Denial } from '../decision/denial.ts';
import { writeDenial } from '../forward/deny-response.ts';
import { relayedHeaders } from '../forward/raw-response.ts';
import type { UpstreamError } from '../forward/upstream-pool.ts';
import type { ResponseWriter, WriterListener } from '../http1/response-writer.ts';
import type { CutReason } from './open-exchanges.ts';
import { cutDenialReason, type Reply, type ReplyEvents, type UpstreamHandle } from './reply.ts';

export class Http1Reply<X> implements Reply, WriterListener {
  readonly kind = 'http1';
  call: UpstreamHandle | undefined;
  bytesSent = 0;
  private readonly x: X;
  private readonly writer: ResponseWriter;
  private readonly events: ReplyEvents<X>;
  private readonly ended: (x: X) => void;
  /** No longer relaying: answered, refused, failed or cut. */
  private done = false;

  constructor(x: X, writer: ResponseWriter, events: ReplyEvents<X>, ended: (x: X) => void) {
    this.x = x;
    this.writer = writer;
    this.events = events;
    this.ended = ended;
    writer.listener = this;
  }

  get started(): boolean {
    return this.writer.headersSent;
  }

  /** Forwarding begins: the call is aborted if the client goes away (answerDone). */
  relayFrom(call: UpstreamHandle): void {
    this.call = call;
  }

  /** `Expect: 100-continue` answered: the client may send its body now (SPEC: only once allowed). */
  invite(): void {
    this.writer.writeContinue();
  }

  /** After this answer the connection closes (nothing after it can be read as the next request). */
  closeAfter(): void {
    this.writer.keepAlive = false;
  }

  /** The writer's answer ended (`clean`) or the connection went first: the exchange is over. */
  answerDone(clean: boolean): void {
    if (!this.done) {
      this.done = true;
      if (!clean) this.call?.abort();
    }
    this.ended(this.x);
  }

  onHead(status: number, headers: string[]): void {
    this.events.answered(this.x, String(status));
    this.writer.writeHead(status, relayedHeaders(headers));
  }

  onData(chunk: Buffer): boolean {
    this.bytesSent += chunk.length;
    return this.writer.write(chunk);
  }

  /** The client took what was written: the service's answer flows again. */
  answerDrained(): void {
    this.call?.resume();
  }

  onEnd(last: Buffer | undefined): void {
    if (last !== undefined) this.bytesSent += last.length;
    this.done = true;
    this.writer.end(last);
  }

  onError(error: UpstreamError, responseStarted: boolean): void {
    this.done = true;
    if (responseStarted || this.writer.headersSent) this.writer.destroy();
    else this.events.failed(this.x, error);
  }

  deny(denied: Denial, requestId: string, body?: string): void {
    this.done = true;
    if (!this.writer.headersSent) this.events.answered(this.x, String(denied.status));
    this.bytesSent += writeDenial(this.writer, denied, requestId, body);
  }

  cut(reason: CutReason, requestId: string): void {
    this.call?.abort();
    // Nothing sent yet: the client learns why. Otherwise the connection closes mid-answer.
    if (!this.writer.headersSent) {
      this.writer.keepAlive = false;
      this.deny(denial(cutDenialReason(reason)), requestId);
    } else {
      this.done = true;
      this.writer.destroy();
    }
  }
}
