// Upgrade requests (WebSocket) after they passed the same identity, path, route and decision
// checks as any request: the request head is rewritten with the SPEC's header rules and sent on a
// fresh connection to the service. Only when the service answers `101 Switching Protocols` do
// bytes flow both ways untouched. Until then nothing from the client reaches the service: a
// service that answers anything else (200, 403…) gets no chance to read the client's next bytes
// as a new request, which would skip our authorization and carry forged identity headers.
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { connectionListed, isResponseHopByHop } from './headers.ts';
import { requestLines } from './request-head.ts';
import { DelimitedBytes, type Delimited } from './delimited-bytes.ts';
import { HEAD_END, MAX_HEAD_BYTES, ResponseParseError, ResponseParser } from './response-parser.ts';
import { CLIENT_STALL_MS } from './upstream-pool.ts';

export interface TunnelTarget {
  /** Opens a new connection to the service (the forwarding pool knows where it is). */
  readonly connect: () => Socket;
  readonly connectTimeoutMs: number;
  /** Longest wait for the service's answer, and longest silence while relaying a refusal. */
  readonly timeoutMs: number;
}

type Failure = 'upstream_unavailable' | 'upstream_timeout';

const MAX_INTERIM = 16;

/**
 * The upgrade request head for the service, checked like any forwarded request's (undefined if it
 * could not be sent safely); `headers` are already filtered and carry the identity headers.
 */
export function upgradeHead(method: string, path: string, headers: readonly string[], upgrade: string, defaultHost: string): string | undefined {
  const lines = requestLines(method, path, headers, defaultHost);
  // Hop-by-hop headers were dropped; an upgrade needs its own pair back, for this hop.
  return lines === undefined ? undefined : lines + 'connection: upgrade\r\nupgrade: ' + upgrade + '\r\n\r\n';
}

/**
 * Opens the service connection, sends the upgrade request and waits for the answer. On 101 it
 * joins the two connections; on any other answer it relays that answer (with `connection: close`)
 * and closes both. `onFailure` runs if nothing was relayed yet (the caller answers 502/504).
 */
export function openTunnel(target: TunnelTarget, client: Duplex, method: string, head: string, firstBytes: Buffer, onStatus: (status: string) => void, onFailure: (reason: Failure) => void): void {
  // The client may have left while the decision was being made: then nothing goes to the service.
  if (client.destroyed) return;
  const service = target.connect();
  let phase: 'waiting' | 'switched' | 'relaying' | 'done' = 'waiting';
  let timedOut = false;
  let clientGone = false;
  let broken = false;
  let refusal: Refusal | undefined;
  let interim = 0;
  const heads = new DelimitedBytes();
  // One limit at a time: connecting, then waiting for the answer, then silence while relaying it.
  let timer: NodeJS.Timeout | undefined;
  const arm = (ms: number): void => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      timedOut = true;
      service.destroy();
    }, ms);
  };
  arm(target.connectTimeoutMs);

  const onServiceData = (chunk: Buffer): void => {
    if (phase === 'relaying') {
      refusal!.feed(chunk);
      return;
    }
    const abandon = (): void => {
      broken = true;
      service.destroy();
    };
    // One read may hold several heads (interim answers, then the real one).
    let offset = 0;
    for (;;) {
      let found: Delimited | undefined;
      try {
        found = heads.until(chunk, offset, HEAD_END, MAX_HEAD_BYTES - 4, 'response head');
      } catch {
        abandon();
        return;
      }
      if (found === undefined) return;
      // found.buf is the head, then whatever of this read follows it.
      const status = /^HTTP\/1\.[01] (\d{3})[ \r]/.exec(found.buf.toString('latin1', 0, 13))?.[1];
      if (status === '101') {
        clearTimeout(timer);
        phase = 'switched';
        onStatus(status);
        service.off('data', onServiceData);
        // Switched: from here on the bytes are the new protocol's, both ways, untouched.
        client.write(found.buf);
        if (firstBytes.length > 0) service.write(firstBytes);
        service.pipe(client);
        client.pipe(service);
        return;
      }
      if (status !== undefined && status.startsWith('1')) {
        // An interim answer (100, 103) before the real one: dropped, the next head decides.
        if (++interim > MAX_INTERIM) {
          abandon();
          return;
        }
        offset += found.used;
        if (offset >= chunk.length) return;
        continue;
      }
      phase = 'relaying';
      refusal = new Refusal(client, service, method, (ms) => arm(ms ?? target.timeoutMs), onStatus, (answered) => {
        phase = 'done';
        clearTimeout(timer);
        service.destroy();
        // An answer too broken to relay is, to the client, a service that is unavailable.
        if (!answered && !clientGone) onFailure('upstream_unavailable');
      });
      refusal.feed(found.buf);
      return;
    }
  };
  service.once('connect', () => {
    arm(target.timeoutMs);
    service.setNoDelay(true);
    service.write(head, 'latin1');
    service.on('data', onServiceData);
  });
  service.on('error', () => undefined); // 'close' follows and decides
  service.on('close', (hadError: boolean) => {
    clearTimeout(timer);
    if (phase === 'waiting') {
      // No answer (refused, reset, timed out, or a head too large or broken to read).
      if (!clientGone) onFailure(timedOut && !broken ? 'upstream_timeout' : 'upstream_unavailable');
    } else if (phase === 'switched') {
      if (hadError || clientGone) {
        client.destroy();
      } else {
        // A clean end: pipe() has ended the client after the service's last bytes (a WebSocket
        // close frame, say); let them drain, within the client stall limit.
        const linger = setTimeout(() => client.destroy(), CLIENT_STALL_MS);
        linger.unref();
        client.once('close', () => clearTimeout(linger));
      }
    } else if (phase === 'relaying') {
      refusal!.serviceClosed(timedOut);
    }
  });
  const onClientGone = (): void => {
    clientGone = true;
    service.destroy();
  };
  client.on('error', onClientGone);
  client.on('close', onClientGone);
}

/**
 * The service did not switch protocols: its answer goes to the client with `connection: close`,
 * read by the strict parser (so its end is known), with backpressure and a silence limit, then
 * both connections close.
 */
class Refusal {
  private readonly client: Duplex;
  private readonly service: Socket;
  private readonly parser: ResponseParser;
  /** (Re)starts the silence limit: the service's by default, the client stall limit when given. */
  private readonly arm: (ms?: number) => void;
  private readonly onDone: (answered: boolean) => void;
  private finished = false;
  private headWritten = false;
  private waitingDrain = false;

  constructor(client: Duplex, service: Socket, method: string, arm: (ms?: number) => void, onStatus: (status: string) => void, onDone: (answered: boolean) => void) {
    this.client = client;
    this.service = service;
    this.arm = arm;
    this.onDone = onDone;
    this.parser = new ResponseParser({
      onHead: (status, headers) => {
        this.headWritten = true;
        onStatus(String(status));
        const listed = connectionListed(headers);
        let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
        for (let i = 0; i < headers.length; i += 2) {
          const name = headers[i]!;
          if (isResponseHopByHop(name) || listed?.has(name)) continue;
          head += `${name}: ${headers[i + 1]}\r\n`;
        }
        // Content-Length, when given, passed above; otherwise the body runs until this connection closes.
        client.write(head + 'connection: close\r\n\r\n', 'latin1');
      },
      onBody: (chunk) => {
        if (!client.write(chunk) && !this.waitingDrain) {
          // Our client is slow: stop reading the service until it drains (bounded by the stall limit).
          this.waitingDrain = true;
          service.pause();
          this.arm(CLIENT_STALL_MS);
          client.once('drain', () => {
            this.waitingDrain = false;
            if (this.finished) return;
            this.arm();
            service.resume();
          });
        }
      },
      onComplete: () => this.complete(),
    });
    this.parser.reset(method);
  }

  feed(chunk: Buffer): void {
    if (this.finished) return;
    this.arm();
    try {
      this.parser.execute(chunk);
    } catch (error) {
      if (!(error instanceof ResponseParseError)) throw error;
      this.abandon();
    }
  }

  /** The service closed: that ends a body without a length; anything else was cut short. */
  serviceClosed(timedOut: boolean): void {
    if (this.finished) return;
    if (timedOut) {
      this.abandon();
      return;
    }
    try {
      this.parser.finish();
    } catch {
      this.abandon();
    }
  }

  private complete(): void {
    if (this.finished) return;
    this.finished = true;
    this.client.end();
    this.onDone(true);
  }

  private abandon(): void {
    this.finished = true;
    if (this.headWritten) this.client.destroy();
    this.onDone(this.headWritten);
  }
}
