// Forwarding to the service: one entry point for every client protocol. With `upstream.protocol:
// http1` the request goes out on our keep-alive HTTP/1.1 pool (upstream-pool.ts; HTTP/2 requests
// are translated), with `h2c` as an HTTP/2 stream on a small pool of sessions (h2c-pool.ts); either
// way the service's answer is relayed into the exchange's reply (the sink), with backpressure
// both ways, and an upgrade goes through the HTTP/1.1 pool.
import { Readable, type Duplex } from 'node:stream';
import { upgradeThrough } from './upgrade-exchange.ts';
import { H2cPool } from './h2c-pool.ts';
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

/** h2c sessions taking new streams, at most. */
const H2C_SESSIONS = 4;

export class Upstream {
  readonly protocol: 'http1' | 'h2c';
  private readonly pool: UpstreamPool;
  private readonly h2c: H2cPool | undefined;
  private readonly timeoutMs: number;

  constructor(options: UpstreamOptions) {
    this.protocol = options.protocol;
    this.timeoutMs = options.timeoutMs;
    this.pool = new UpstreamPool(options);
    // A few sessions are plenty: each carries up to the service's SETTINGS_MAX_CONCURRENT_STREAMS.
    this.h2c = options.protocol === 'h2c' ? new H2cPool({ url: options.url, timeoutMs: options.timeoutMs, connectTimeoutMs: options.connectTimeoutMs, maxSessions: H2C_SESSIONS }) : undefined;
  }

  /**
   * Sends one request and relays the answer into `sink`. `headers` carry no framing
   * (Content-Length, Transfer-Encoding): the framing comes from what the client's parser read,
   * `bodyLength` (`CHUNKED` when unknown), never from forwarded headers.
   */
  forward(method: string, path: string, headers: string[], body: Readable | Buffer | null, bodyLength: number | undefined, sink: UpstreamExchange, grpc = false): ForwardCall {
    if (this.h2c !== undefined) return this.forwardH2c(method, path, headers, bodyLength === undefined || body === null ? null : Buffer.isBuffer(body) ? Readable.from([body]) : body, sink, grpc);
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

  /**
   * HTTP/2 to the service: field names lowercased (RFC 9113 8.2.1), the Host as `:authority`, and
   * for gRPC `te: trailers` (gRPC's PROTOCOL-HTTP2; it is hop-by-hop, so the client's was
   * dropped). A gRPC stream has no silence limit once answered: a quiet watch lives as long as its
   * grant, which ends it; any other stream keeps upstream.timeout.
   */
  private forwardH2c(method: string, path: string, headers: string[], body: Readable | null, sink: UpstreamExchange, grpc: boolean): ForwardCall {
    let authority: string | undefined;
    const fields: string[] = [];
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!.toLowerCase();
      if (name === 'host') authority = headers[i + 1]!;
      else fields.push(name, headers[i + 1]!);
    }
    if (grpc) fields.push('te', 'trailers');
    return this.h2c!.request({ method, path, authority, headers: fields, body, idleTimeoutMs: grpc ? undefined : this.timeoutMs, exchange: sink });
  }

  close(): Promise<void> {
    return Promise.all([this.pool.close(), this.h2c?.close()]).then(() => undefined);
  }
}
