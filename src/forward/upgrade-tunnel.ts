// Upgrade requests (WebSocket) after they passed the same identity, path, route and decision
// checks as any request: the request head is rewritten with the SPEC's header rules and sent
// on a fresh connection to the service, then bytes flow both ways untouched. The service's
// answer (101, or a refusal) reaches the client as it was sent.
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';

export interface TunnelTarget {
  /** `http://host:port` or `unix:/path`. */
  readonly url: string;
  readonly connectTimeoutMs: number;
}

/** The request head for the service; `headers` are already filtered and carry the identity headers. */
export function upgradeHead(method: string, path: string, headers: readonly string[], upgrade: string): string {
  let head = `${method} ${path} HTTP/1.1\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  // Hop-by-hop headers were dropped; an upgrade needs its own pair back, for this hop.
  return head + `connection: upgrade\r\nupgrade: ${upgrade}\r\n\r\n`;
}

/**
 * Opens the service connection and joins it to the client's. `onFailure` runs if the service
 * cannot be reached before anything was relayed (the caller answers 502/504).
 */
export function openTunnel(target: TunnelTarget, client: Duplex, head: string, firstBytes: Buffer, onStatus: (status: string) => void, onFailure: (reason: 'upstream_unavailable' | 'upstream_timeout') => void): void {
  const service: Socket = target.url.startsWith('unix:')
    ? connect(target.url.slice('unix:'.length))
    : connect(Number(new URL(target.url).port || 80), new URL(target.url).hostname);
  let joined = false;
  const timer = setTimeout(() => {
    service.destroy();
    onFailure('upstream_timeout');
  }, target.connectTimeoutMs);
  service.once('connect', () => {
    clearTimeout(timer);
    joined = true;
    service.setNoDelay(true);
    service.write(head);
    if (firstBytes.length > 0) service.write(firstBytes);
    // The service's status line (101, or a refusal), for the requests metric; bytes pass untouched.
    service.once('data', (chunk: Buffer) => onStatus(/^HTTP\/1\.[01] (\d{3})/.exec(chunk.toString('latin1', 0, 12))?.[1] ?? 'invalid'));
    service.pipe(client);
    client.pipe(service);
  });
  service.on('error', () => {
    clearTimeout(timer);
    if (!joined) onFailure('upstream_unavailable');
    client.destroy();
  });
  client.on('error', () => service.destroy());
  client.on('close', () => service.destroy());
  service.on('close', () => client.destroy());
}
