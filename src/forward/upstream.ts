// Forwarding to the service: the inbound request goes out on our keep-alive pool
// (upstream-pool.ts) and the service's answer streams back into our response, with backpressure
// both ways. An upgrade request goes through the same pool (upgrade-exchange.ts).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { relayedHeaders } from './raw-response.ts';
import { upgradeThrough } from './upgrade-exchange.ts';
import { CHUNKED, UpstreamCall, UpstreamPool, type UpstreamError, type UpstreamExchange, type UpstreamFailure } from './upstream-pool.ts';

export { UpstreamError, type UpstreamFailure } from './upstream-pool.ts';

export interface UpstreamOptions {
  /** `http://host:port` or `unix:/path/to.sock`. */
  readonly url: string;
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly connections: number;
}

export class Upstream {
  private readonly pool: UpstreamPool;

  constructor(options: UpstreamOptions) {
    this.pool = new UpstreamPool(options);
  }

  /**
   * Sends the request and streams the answer into `res`. `onFailure` is called only when nothing
   * was written yet (the caller then answers 502/504); after that a failure just cuts the response.
   * A client that goes away aborts the upstream exchange.
   */
  forward(req: IncomingMessage, res: ServerResponse, path: string, headers: string[], onHeaders: (status: number) => void, onFailure: (reason: UpstreamFailure, error: UpstreamError) => void, sent?: SentBytes): void {
    // The framing comes from what Node's parser read (it refused CL with TE, and bad lengths), never
    // from forwarded headers: `headers` carries no Content-Length or Transfer-Encoding at all.
    const length = req.headers['transfer-encoding'] !== undefined ? CHUNKED : req.headers['content-length'] !== undefined ? Number(req.headers['content-length']) : undefined;
    // req.socket, not res.socket: a pipelined request's response gets its socket only when the
    // answers before it are done, but its exchange starts now.
    const socket = req.socket as WatchedSocket;
    const relay = new ResponseRelay(res, socket, onHeaders, onFailure, sent);
    const call = new UpstreamCall(req.method ?? 'GET', path, headers, length === undefined || length === 0 ? null : req, length, relay);
    relay.call = call;
    if (socket.destroyed) return; // the client already left: nothing to forward
    // One 'close' listener per client connection (not one per request) aborts the exchanges
    // relaying into it when the client goes away (usually one; more when requests are pipelined).
    const relays = socket[RELAYS];
    if (relays === undefined) {
      socket[RELAYS] = [relay];
      socket.once('close', onClientSocketClose);
    } else {
      relays.push(relay);
    }
    this.pool.dispatch(call);
  }

  /**
   * Sends an upgrade request (its head already admitted; `head` is what the client sent after it)
   * on a connection of its own. On 101 the two connections are joined; any other answer is relayed
   * to `client` with `connection: close` and both end. `onFailure` as for forward().
   */
  upgrade(req: IncomingMessage, client: Duplex, head: Buffer, path: string, headers: string[], onStatus: (status: string) => void, onFailure: (reason: UpstreamFailure, error: UpstreamError) => void): void {
    upgradeThrough(this.pool, client, { method: req.method ?? 'GET', path, headers, upgrade: req.headers.upgrade ?? '', firstBytes: head }, onStatus, onFailure);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** Where the body bytes relayed to the client are counted (the access log), when anyone asks. */
export interface SentBytes {
  bytes: number;
}

const RELAYS = Symbol('portcullis.relays');
type WatchedSocket = Socket & { [RELAYS]?: ResponseRelay[] };

function onClientSocketClose(this: WatchedSocket): void {
  for (const relay of this[RELAYS]!.splice(0)) relay.clientGone();
}

/** Relays one answer from the service into our response; pauses the service while our client drains. */
class ResponseRelay implements UpstreamExchange {
  call: UpstreamCall | undefined;
  private readonly res: ServerResponse;
  private readonly reportStatus: (status: number) => void;
  private readonly reportFailure: (reason: UpstreamFailure, error: UpstreamError) => void;
  private done = false;
  private waitingDrain = false;

  private readonly socket: WatchedSocket;
  private readonly sent: SentBytes | undefined;

  constructor(res: ServerResponse, socket: WatchedSocket, onHeaders: (status: number) => void, onFailure: (reason: UpstreamFailure, error: UpstreamError) => void, sent: SentBytes | undefined) {
    this.res = res;
    this.sent = sent;
    this.socket = socket;
    this.reportStatus = onHeaders;
    this.reportFailure = onFailure;
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

  private onDrain: (() => void) | undefined;

  onHead(status: number, headers: string[]): void {
    this.reportStatus(status);
    this.res.writeHead(status, relayedHeaders(headers));
  }

  onData(chunk: Buffer): boolean {
    if (this.sent !== undefined) this.sent.bytes += chunk.length;
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
    if (this.sent !== undefined && last !== undefined) this.sent.bytes += last.length;
    this.finished();
    this.res.end(last);
  }

  onError(error: UpstreamError, responseStarted: boolean): void {
    this.finished();
    if (responseStarted || this.res.headersSent) this.res.destroy(error);
    else this.reportFailure(error.reason, error);
  }
}
