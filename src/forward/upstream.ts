// Forwarding to the service: one entry point for every client protocol. The request goes out on
// our keep-alive HTTP/1.1 pool (upstream-pool.ts), and the service's answer is relayed into the
// exchange's reply (the sink), with backpressure both ways.
import type { Readable } from 'node:stream';
import type { Socket } from 'node:net';
import { UpstreamCall, UpstreamPool, type UpstreamExchange } from './upstream-pool.ts';

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

  /** A connection of its own to the service (an upgrade tunnel), outside the keep-alive pool. */
  connect(): Socket {
    return this.pool.connectSocket();
  }

  /** The Host header for a request that brought none: the service's authority. */
  get hostHeader(): string {
    return this.pool.hostHeader;
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
