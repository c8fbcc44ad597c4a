// Upgrade requests (WebSocket), after they passed the same identity, path, route and decision
// checks as any request, are one more exchange of the forwarding pool (as undici's
// onRequestUpgrade): the pool writes the head by the same rules as any request's plus the upgrade
// pair, on a connection of its own, and reads the answer with the same strict parser and limits.
// Only when the service answers `101 Switching Protocols` do the two connections join. Until then
// nothing from the client reaches the service: a service that answers anything else (200, 403…)
// gets no chance to read the client's next bytes as a new request, which would skip our
// authorization and carry forged identity headers; its answer is relayed and both connections end.
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { RawResponse, rawHead } from './raw-response.ts';
import { splice } from './upgrade-tunnel.ts';
import { UpstreamCall, type UpstreamError, type UpstreamExchange, type UpstreamFailure, type UpstreamPool } from './upstream-pool.ts';

export interface UpgradeRequest {
  readonly method: string;
  readonly path: string;
  /** Already filtered, with the identity headers: as for any forwarded request. */
  readonly headers: readonly string[];
  /** The protocol(s) asked for, as the client's Upgrade header named them. */
  readonly upgrade: string;
  /** What the client sent after its head: the new protocol's first bytes, held until the 101. */
  readonly firstBytes: Buffer;
}

/**
 * Sends the upgrade request on `pool`. `onStatus` gets the service's final status (`'101'` or the
 * answer relayed; as text, the requests metric's label); `onFailure` runs only when nothing was written to the client yet (the caller
 * answers 502/504). A client already gone sends nothing.
 */
export function upgradeThrough(pool: UpstreamPool, client: Duplex, request: UpgradeRequest, onStatus: (status: string) => void, onFailure: (reason: UpstreamFailure, error: UpstreamError) => void): void {
  // The client may have left while the decision was being made: then nothing goes to the service.
  if (client.destroyed) return;
  const exchange = new UpgradeExchange(client, request.firstBytes, onStatus, onFailure);
  const call = new UpstreamCall(request.method, request.path, request.headers, null, undefined, exchange, request.upgrade);
  exchange.call = call;
  // A client that leaves aborts the exchange (closes its service connection) in any phase.
  const abort = (): void => call.abort();
  client.on('error', abort);
  client.on('close', abort);
  pool.dispatch(call);
}

class UpgradeExchange implements UpstreamExchange {
  call: UpstreamCall | undefined;
  private readonly client: Duplex;
  private readonly answer: RawResponse;
  private readonly firstBytes: Buffer;
  private readonly onStatus: (status: string) => void;
  private readonly onFailure: (reason: UpstreamFailure, error: UpstreamError) => void;
  private readonly resume = (): void => this.call?.resume();

  constructor(client: Duplex, firstBytes: Buffer, onStatus: (status: string) => void, onFailure: (reason: UpstreamFailure, error: UpstreamError) => void) {
    this.client = client;
    this.answer = new RawResponse(client);
    this.firstBytes = firstBytes;
    this.onStatus = onStatus;
    this.onFailure = onFailure;
  }

  onUpgrade(status: 101, headers: string[], service: Socket, rest: Buffer): void {
    this.onStatus('101');
    // The 101 goes to the client with the service's headers (its Upgrade and Connection pair and
    // handshake fields are the new protocol's, for the client to check).
    this.client.write(rawHead(status, headers), 'latin1');
    splice(this.client, service, this.firstBytes, rest);
  }

  onHead(status: number, headers: string[]): void {
    this.onStatus(String(status));
    this.answer.writeHead(status, headers);
  }

  onData(chunk: Buffer): boolean {
    return this.answer.write(chunk, this.resume);
  }

  onEnd(last: Buffer | undefined): void {
    this.answer.end(last);
  }

  onError(error: UpstreamError, responseStarted: boolean): void {
    // Part of an answer was relayed: the client can only be cut. Otherwise the caller answers.
    if (responseStarted) this.client.destroy();
    else this.onFailure(error.reason, error);
  }
}
