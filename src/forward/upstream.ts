// Forwarding to the service: one entry point for every client protocol. The request goes out on
// our keep-alive HTTP/1.1 pool (upstream-pool.ts), and the service's answer is relayed into the
// exchange's reply (the sink), with backpressure both ways.
import type { Duplex, Readable } from 'node:stream';
import { upgradeThrough } from './upgrade-exchange.ts';
import { UpstreamCall, UpstreamPool, type UpstreamError, type UpstreamExchange, type UpstreamFailure } from './upstream-pool.ts';

export { CHUNKED, UpstreamError, type UpstreamFailure } from './upstream-pool.ts';

export interface UpstreamOptions {
  /** `http://host:port` or `unix:/path/to.sock`. */
  readonly url: string;
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly connections: number;
  /** SPEC `upstream.protocol`. */
  readonly protocol: 'http1' | 'h2c';
}

/** The call relaying one answer: aborted when the client goes, resumed when it drains. */
export interface ForwardCall {
  abort(): void;
  resume(): void;
}

export class Upstream {
  readonly protocol: 'http1' | 'h2c';
  private readonly pool: UpstreamPool;

  constructor(options: UpstreamOptions) {
    this.protocol = options.protocol;
    this.pool = new UpstreamPool(options);
  }

  /**
   * Sends one request and relays the answer into `sink`. `headers` carry no framing
   * (Content-Length, Transfer-Encoding): the framing comes from what the client's parser read,
   * `bodyLength` (`CHUNKED` when unknown), never from forwarded headers.
   */
  forward(method: string, path: string, headers: string[], body: Readable | null, bodyLength: number | undefined, sink: UpstreamExchange): ForwardCall {
    const call = new UpstreamCall(method, path, headers, bodyLength === undefined || bodyLength === 0 ? null : body, bodyLength, sink);
    this.pool.dispatch(call);
    return call;
  }

  /**
   * Sends an upgrade request (its head already admitted; `firstBytes` is what the client sent
   * after it) through the same pool, on a connection of its own. On 101 the two connections are
   * joined; any other answer is relayed to `client` with `connection: close` and both end.
   * `onFailure` runs only when nothing was written to the client yet (502/504).
   */
  upgrade(client: Duplex, method: string, path: string, headers: string[], upgrade: string, firstBytes: Buffer, onStatus: (status: string) => void, onFailure: (reason: UpstreamFailure, error: UpstreamError) => void): void {
    upgradeThrough(this.pool, client, { method, path, headers, upgrade, firstBytes }, onStatus, onFailure);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
