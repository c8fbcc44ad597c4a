// The answer to an HTTP/1.1 request: the service's response relayed into our ServerResponse with
// backpressure both ways, a refusal in the SPEC's JSON format, and a cut that closes the
// connection without the final chunk (SPEC "Streams": the client must see the answer did not end).
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { denial, type Denial } from '../decision/denial.ts';
import { writeDenial } from '../forward/deny-response.ts';
import { relayedHeaders } from '../forward/raw-response.ts';
import type { UpstreamError } from '../forward/upstream-pool.ts';
import type { CutReason } from './open-exchanges.ts';
import { cutDenialReason, type Reply, type ReplyEvents, type UpstreamHandle } from './reply.ts';

const RELAYS = Symbol('portcullis.relays');
type WatchedSocket = Socket & { [RELAYS]?: Http1Reply<unknown>[] };

function onClientSocketClose(this: WatchedSocket): void {
  for (const reply of this[RELAYS]!.splice(0)) reply.clientGone();
}

export class Http1Reply<X> implements Reply {
  readonly kind = 'http1';
  call: UpstreamHandle | undefined;
  bytesSent = 0;
  private readonly x: X;
  private readonly res: ServerResponse;
  private readonly socket: WatchedSocket;
  private readonly events: ReplyEvents<X>;
  private done = false;
  private waitingDrain = false;
  private onDrain: (() => void) | undefined;

  constructor(x: X, res: ServerResponse, socket: Socket, events: ReplyEvents<X>) {
    this.x = x;
    this.res = res;
    // req.socket, not res.socket: a pipelined request's response gets its socket only when the
    // answers before it are done, but its exchange starts now.
    this.socket = socket as WatchedSocket;
    this.events = events;
  }

  get started(): boolean {
    return this.res.headersSent;
  }

  /**
   * Forwarding begins: the call is aborted if the client goes away. One 'close' listener per client
   * connection (not one per request) serves every exchange relaying into it.
   */
  relayFrom(call: UpstreamHandle): void {
    this.call = call;
    const relays = this.socket[RELAYS];
    if (relays === undefined) {
      this.socket[RELAYS] = [this];
      this.socket.once('close', onClientSocketClose);
    } else {
      relays.push(this);
    }
  }

  /** `Expect: 100-continue` answered: the client may send its body now (SPEC: only once allowed). */
  invite(): void {
    this.res.writeContinue();
  }

  /** After this answer the connection closes (nothing after it can be read as the next request). */
  closeAfter(): void {
    this.res.shouldKeepAlive = false;
  }

  clientGone(): void {
    if (!this.done) this.call?.abort();
  }

  /** This exchange no longer relays into its client's connection. */
  private finished(): void {
    this.done = true;
    const relays = this.socket[RELAYS];
    const at = relays === undefined ? -1 : relays.indexOf(this);
    if (at !== -1) relays!.splice(at, 1);
  }

  onHead(status: number, headers: string[]): void {
    this.events.answered(this.x, String(status));
    this.res.writeHead(status, relayedHeaders(headers));
  }

  onData(chunk: Buffer): boolean {
    this.bytesSent += chunk.length;
    if (this.res.write(chunk)) return true;
    if (!this.waitingDrain) {
      this.waitingDrain = true;
      this.onDrain ??= () => {
        this.waitingDrain = false;
        this.call?.resume();
      };
      this.res.once('drain', this.onDrain);
    }
    return false;
  }

  onEnd(last: Buffer | undefined): void {
    if (last !== undefined) this.bytesSent += last.length;
    this.finished();
    this.res.end(last);
  }

  onError(error: UpstreamError, responseStarted: boolean): void {
    this.finished();
    if (responseStarted || this.res.headersSent) this.res.destroy(error);
    else this.events.failed(this.x, error);
  }

  deny(denied: Denial, requestId: string): void {
    this.finished();
    if (!this.res.headersSent) this.events.answered(this.x, String(denied.status));
    this.bytesSent += writeDenial(this.res, denied, requestId);
  }

  cut(reason: CutReason, requestId: string): void {
    this.call?.abort();
    // Nothing sent yet: the client learns why. Otherwise the connection closes mid-answer.
    if (!this.res.headersSent) {
      this.res.shouldKeepAlive = false;
      this.deny(denial(cutDenialReason(reason)), requestId);
    } else {
      this.finished();
      this.res.destroy();
    }
  }
}
