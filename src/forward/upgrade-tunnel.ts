// Upgrade requests (WebSocket) after they passed the same identity, path, route and decision
// checks as any request: the request head is rewritten with the SPEC's header rules and sent on a
// fresh connection to the service. Only when the service answers `101 Switching Protocols` do
// bytes flow both ways untouched. Until then nothing from the client reaches the service: a
// service that answers anything else (200, 403…) gets no chance to read the client's next bytes
// as a new request, which would skip our authorization and carry forged identity headers.
import { STATUS_CODES } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { isResponseHopByHop } from './headers.ts';
import { ResponseParseError, ResponseParser } from './response-parser.ts';

export interface TunnelTarget {
  /** `http://host:port` or `unix:/path`. */
  readonly url: string;
  readonly connectTimeoutMs: number;
  /** Longest wait for the service's answer to the upgrade request. */
  readonly timeoutMs: number;
}

const HEAD_END = Buffer.from('\r\n\r\n');
const MAX_HEAD_BYTES = 64 * 1024;

/** The request head for the service; `headers` are already filtered and carry the identity headers. */
export function upgradeHead(method: string, path: string, headers: readonly string[], upgrade: string): string {
  let head = `${method} ${path} HTTP/1.1\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  // Hop-by-hop headers were dropped; an upgrade needs its own pair back, for this hop.
  return head + `connection: upgrade\r\nupgrade: ${upgrade}\r\n\r\n`;
}

/**
 * Opens the service connection, sends the upgrade request and waits for the answer. On 101 it
 * joins the two connections; on any other answer it relays that answer (with `connection: close`)
 * and closes both. `onFailure` runs if nothing was relayed yet (the caller answers 502/504).
 */
export function openTunnel(target: TunnelTarget, client: Duplex, head: string, firstBytes: Buffer, onStatus: (status: string) => void, onFailure: (reason: 'upstream_unavailable' | 'upstream_timeout') => void): void {
  const service: Socket = target.url.startsWith('unix:') ? connect(target.url.slice('unix:'.length)) : connect(Number(new URL(target.url).port || 80), new URL(target.url).hostname);
  let phase: 'waiting' | 'switched' | 'relaying' | 'done' = 'waiting';
  let timedOut = false;
  let refusal: Refusal | undefined;
  const giveUp = (): void => {
    timedOut = true;
    service.destroy();
  };
  let timer = setTimeout(giveUp, target.connectTimeoutMs);
  let received: Buffer = Buffer.alloc(0);
  const onServiceData = (chunk: Buffer): void => {
    received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
    const end = received.indexOf(HEAD_END);
    if (end === -1) {
      if (received.length > MAX_HEAD_BYTES) service.destroy();
      return;
    }
    clearTimeout(timer);
    service.off('data', onServiceData);
    const status = /^HTTP\/1\.[01] (\d{3})[ \r]/.exec(received.toString('latin1', 0, 13))?.[1];
    if (status === '101') {
      phase = 'switched';
      onStatus(status);
      // Switched: from here on the bytes are the new protocol's, both ways, untouched.
      client.write(received);
      if (firstBytes.length > 0) service.write(firstBytes);
      service.pipe(client);
      client.pipe(service);
      return;
    }
    phase = 'relaying';
    refusal = new Refusal(client, onStatus, (answered) => {
      phase = 'done';
      service.destroy();
      // An answer too broken to relay is, to the client, a service that is unavailable.
      if (!answered) onFailure('upstream_unavailable');
    });
    service.on('data', (more: Buffer) => refusal!.feed(more));
    refusal.feed(received);
  };
  service.once('connect', () => {
    clearTimeout(timer);
    timer = setTimeout(giveUp, target.timeoutMs);
    service.setNoDelay(true);
    service.write(head);
    service.on('data', onServiceData);
  });
  service.on('error', () => undefined); // 'close' follows and decides
  service.on('close', () => {
    clearTimeout(timer);
    if (phase === 'waiting') onFailure(timedOut ? 'upstream_timeout' : 'upstream_unavailable');
    else if (phase === 'switched') client.destroy();
    else if (phase === 'relaying') refusal!.serviceClosed();
  });
  client.on('error', () => service.destroy());
  client.on('close', () => service.destroy());
}

/**
 * The service did not switch protocols: its answer goes to the client with `connection: close`,
 * read by the strict parser (so its end is known), then both connections close.
 */
class Refusal {
  private readonly client: Duplex;
  private readonly parser: ResponseParser;
  private readonly onDone: (answered: boolean) => void;
  private finished = false;
  private headWritten = false;

  constructor(client: Duplex, onStatus: (status: string) => void, onDone: (answered: boolean) => void) {
    this.client = client;
    this.onDone = onDone;
    this.parser = new ResponseParser({
      onHead: (status, headers) => {
        this.headWritten = true;
        onStatus(String(status));
        let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
        let length: string | undefined;
        for (let i = 0; i < headers.length; i += 2) {
          if (headers[i] === 'content-length') length = headers[i + 1];
          else if (!isResponseHopByHop(headers[i]!)) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
        }
        // A known length is kept; otherwise the body runs until this connection closes.
        client.write(head + (length !== undefined ? `content-length: ${length}\r\n` : '') + 'connection: close\r\n\r\n');
      },
      onBody(chunk) {
        client.write(chunk);
      },
      onComplete: () => this.complete(),
    });
    this.parser.reset('GET');
  }

  feed(chunk: Buffer): void {
    if (this.finished) return;
    try {
      this.parser.execute(chunk);
    } catch (error) {
      if (!(error instanceof ResponseParseError)) throw error;
      this.abandon();
    }
  }

  /** The service closed: that ends a body without a length; anything else was cut short. */
  serviceClosed(): void {
    if (this.finished) return;
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
