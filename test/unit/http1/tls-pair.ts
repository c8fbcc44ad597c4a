// A real TLS server on loopback (the per-run dev PKI's server certificate) for the unit tests that
// drive src/http1/ on real sockets: each connect() gives a client and the server's side of it.
import { createServer, connect, type TLSSocket, type Server } from 'node:tls';
import { createPki, type Pki } from '../../support/harness.ts';

export interface TlsPair {
  /** The client, its handshake done. */
  client: TLSSocket;
  /** The server's side of the same connection. */
  socket: TLSSocket;
}

export interface TlsServer {
  /** A new connection to the server, once both sides have their handshake. */
  connect(): Promise<TlsPair>;
  close(): Promise<void>;
}

export async function tlsServer(): Promise<TlsServer> {
  const pki: Pki = await createPki();
  let accepted: ((socket: TLSSocket) => void) | undefined;
  const server: Server = createServer({ cert: pki.server.certPem, key: pki.server.keyPem }, (socket) => accepted?.(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    async connect() {
      const got = new Promise<TLSSocket>((resolve) => (accepted = resolve));
      const client = connect({ port: (server.address() as { port: number }).port, host: '127.0.0.1', servername: 'localhost', ca: pki.ca.bundlePem });
      client.on('error', () => undefined);
      const [socket] = await Promise.all([got, new Promise<void>((resolve) => client.once('secureConnect', () => resolve()))]);
      return { client, socket };
    },
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      pki.cleanup();
    },
  };
}
