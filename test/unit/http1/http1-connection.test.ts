// src/http1/http1-connection.ts on a real TLS socket with a minimal handler: a graceful stop
// (closeIfIdle) must not drop the end of an answer that is still in the socket's buffer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tlsServer, type TlsServer } from './tls-pair.ts';
import { Http1Connection, type Http1Handler, type Http1Limits } from '../../../src/http1/http1-connection.ts';

const LIMITS: Http1Limits = { maxHeaderBytes: 16_384, maxFields: 2000, headersTimeoutMs: 10_000, idleTimeoutMs: 60_000 };

describe('Http1Connection', () => {
  let tls: TlsServer;
  beforeAll(async () => void (tls = await tlsServer()));
  afterAll(() => tls.close());

  it('closeIfIdle right after an answer ended: a client not reading yet still gets all of it, then the close', async () => {
    const TOTAL = 8 * 1024 * 1024;
    const { client, socket } = await tls.connect();
    const answered = Promise.withResolvers<Http1Connection<null>>();
    const handler: Http1Handler<null> = {
      draining: false,
      request(connection, _head, _body, writer) {
        writer.writeHead(200, ['content-length', String(TOTAL)]);
        writer.end(Buffer.alloc(TOTAL, 0x41));
        answered.resolve(connection);
      },
      upgrade: (_c, _h, s) => s.destroy(),
      refused: () => undefined,
      closed: () => undefined,
    };
    const connection = new Http1Connection(socket, null, LIMITS, handler);
    client.pause();
    client.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await answered.promise;
    // The answer has ended for the connection; most of it is still in the socket's buffer.
    expect(socket.writableLength).toBeGreaterThan(0);
    connection.closeIfIdle();
    let received = 0;
    let head = '';
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    client.on('data', (c: Buffer) => {
      received += c.length;
      if (head.length < 512) head += c.toString('latin1');
    });
    client.resume();
    await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    // The whole answer: its head, then exactly TOTAL bytes; then the connection closed.
    expect(head).toMatch(/^HTTP\/1\.1 200 OK\r\ncontent-length: 8388608\r\n/);
    expect(received).toBe(head.indexOf('\r\n\r\n') + 4 + TOTAL);
    expect(client.destroyed).toBe(true);
    socket.destroy();
  });
});
