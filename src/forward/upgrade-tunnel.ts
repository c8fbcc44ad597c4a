// An upgraded tunnel: the client's connection and the service's, once the service answered
// `101 Switching Protocols` (upgrade-exchange.ts), joined so bytes flow both ways untouched. Nothing
// here reads them: from the switch on they are the new protocol's.
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { CLIENT_STALL_MS } from './upstream-pool.ts';

/**
 * Joins `client` and `service`. `toService` is what the client sent after its request head (held
 * until the switch); `toClient` what the service sent after its 101 head. An end on one side is
 * passed on as a half-close; a reset or a client gone closes both.
 */
export function splice(client: Duplex, service: Socket, toService: Buffer, toClient: Buffer): void {
  let clientGone = false;
  if (toClient.length > 0) client.write(toClient);
  if (toService.length > 0) service.write(toService);
  service.pipe(client);
  client.pipe(service);
  service.on('error', () => undefined); // 'close' follows and decides
  service.on('close', (hadError: boolean) => {
    if (hadError || clientGone) {
      client.destroy();
      return;
    }
    // A clean end: pipe() has ended the client after the service's last bytes (a WebSocket
    // close frame, say); let them drain, within the client stall limit.
    const linger = setTimeout(() => client.destroy(), CLIENT_STALL_MS);
    linger.unref();
    client.once('close', () => clearTimeout(linger));
  });
  const onClientGone = (): void => {
    clientGone = true;
    service.destroy();
  };
  client.on('error', onClientGone);
  client.on('close', onClientGone);
}
