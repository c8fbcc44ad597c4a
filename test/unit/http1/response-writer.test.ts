// src/http1/response-writer.ts on a real TLS socket: the framing it adds (Date, Connection and
// Keep-Alive, chunked only when there is no length and the client speaks HTTP/1.1, nothing for
// HEAD, 204 and 304), what a queued answer holds (full at 64 KiB, sent whole and in order when its
// turn comes), and a queued answer's cut waiting for its turn.
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tlsServer, type TlsServer } from './tls-pair.ts';
import { ResponseWriter, type AnswerOwner, type WriterListener } from '../../../src/http1/response-writer.ts';

const KEEP_ALIVE = 'Connection: keep-alive\r\nKeep-Alive: timeout=5\r\n';

describe('ResponseWriter', () => {
  let tls: TlsServer;
  beforeAll(async () => void (tls = await tlsServer()));
  afterAll(() => tls.close());

  /** A server-side TLS socket, what its client received so far, and when it closed. */
  async function pair(): Promise<{ socket: TLSSocket; received: () => string; closed: Promise<void> }> {
    const { client, socket } = await tls.connect();
    let text = '';
    client.on('data', (c: Buffer) => (text += c.toString('latin1')));
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    socket.on('error', () => undefined);
    return { socket, received: () => text, closed };
  }

  const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

  class Owner implements AnswerOwner {
    readonly ended: [ResponseWriter, boolean][] = [];
    answerEnded(writer: ResponseWriter, clean: boolean): void {
      this.ended.push([writer, clean]);
    }
  }
  class Listener implements WriterListener {
    done: boolean[] = [];
    drained = 0;
    answerDone(clean: boolean): void {
      this.done.push(clean);
    }
    answerDrained(): void {
      this.drained++;
    }
  }

  /** Two answers on one connection: the first on the wire, the second queued behind it with a Listener. */
  async function queuedBehindFirst() {
    const connection = await pair();
    const owner = new Owner();
    const first = new ResponseWriter(connection.socket, owner, false, false, true, KEEP_ALIVE, false);
    const queued = new ResponseWriter(connection.socket, owner, false, false, true, KEEP_ALIVE, true);
    const listener = new Listener();
    queued.listener = listener;
    return { ...connection, owner, first, queued, listener };
  }

  it('frames an unsized HTTP/1.1 answer chunked, adds Date and the keep-alive fields once, and keeps an upstream Date', async () => {
    const { socket, received } = await pair();
    const owner = new Owner();
    const unsized = new ResponseWriter(socket, owner, false, false, true, KEEP_ALIVE, false);
    unsized.writeHead(200, ['content-type', 'text/plain']);
    unsized.write(Buffer.from('hello '));
    unsized.end('world');
    const sized = new ResponseWriter(socket, owner, false, false, true, KEEP_ALIVE, false);
    sized.writeHead(201, ['Content-Length', '2', 'Date', 'Thu, 01 Jan 1970 00:00:00 GMT']);
    sized.end('ok');
    await settle();
    const [first, second] = received().split(/(?=HTTP\/1\.1 201)/);
    expect(first).toMatch(/^HTTP\/1\.1 200 OK\r\ncontent-type: text\/plain\r\nDate: [^\r]+ GMT\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n$/);
    expect(second).toBe(`HTTP/1.1 201 Created\r\nContent-Length: 2\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n${KEEP_ALIVE}\r\nok`);
    expect(owner.ended.map(([, clean]) => clean)).toEqual([true, true]);
    socket.destroy();
  });

  it('HTTP/1.0 without a length: no chunked framing, Connection: close (the close ends the body)', async () => {
    const { socket, received } = await pair();
    const writer = new ResponseWriter(socket, new Owner(), false, true, true, KEEP_ALIVE, false);
    writer.writeHead(200, ['content-type', 'text/plain']);
    expect(writer.keepAlive).toBe(false);
    writer.write(Buffer.from('abc'));
    writer.end();
    await settle();
    expect(received()).toMatch(/^HTTP\/1\.1 200 OK\r\ncontent-type: text\/plain\r\nDate: [^\r]+\r\nConnection: close\r\n\r\nabc$/);
    socket.destroy();
  });

  it.each([
    ['HEAD', true, 200],
    ['204', false, 204],
    ['304', false, 304],
  ])('%s: no body bytes and no chunked framing, whatever is written', async (_what, head, status) => {
    const { socket, received } = await pair();
    const owner = new Owner();
    const writer = new ResponseWriter(socket, owner, head, false, true, KEEP_ALIVE, false);
    writer.writeHead(status, ['x-kind', 'bodyless']);
    expect(writer.write(Buffer.from('must not be sent'))).toBe(true);
    writer.end('nor this');
    await settle();
    expect(received()).toMatch(new RegExp(`^HTTP/1\\.1 ${status} [^\\r]+\\r\\nx-kind: bodyless\\r\\nDate: [^\\r]+\\r\\n${KEEP_ALIVE.replaceAll('\r\n', '\\r\\n')}\\r\\n$`));
    expect(owner.ended).toHaveLength(1);
    socket.destroy();
  });

  it('a queued answer is full at 64 KiB, goes out whole after the one before it, then is told to write on', async () => {
    const { socket, received, owner, first, queued, listener } = await queuedBehindFirst();
    first.writeHead(200, ['content-length', '5']);
    first.write(Buffer.from('fir'));
    queued.writeHead(200, ['content-length', String(128 * 1024)]);
    const part = Buffer.alloc(16 * 1024, 0x71);
    const answers: boolean[] = [];
    for (let i = 0; i < 4; i++) answers.push(queued.write(part));
    // 64 KiB plus its head: full; nothing of it on the wire, the first answer's bytes alone.
    expect(answers).toEqual([true, true, true, false]);
    await settle();
    expect(received()).not.toContain('qqqq');
    expect(listener.drained).toBe(0);
    first.end('st');
    // The owner promotes the next answer when the first has ended (http1-connection.ts answerEnded).
    expect(owner.ended).toEqual([[first, true]]);
    queued.promote();
    await settle();
    expect(listener.drained).toBe(1);
    for (let i = 0; i < 4; i++) queued.write(part);
    queued.end();
    await settle();
    const text = received();
    const split = text.indexOf('HTTP/1.1', 1);
    expect(text.slice(0, split)).toMatch(/\r\n\r\nfirst$/);
    expect(text.slice(text.indexOf('\r\n\r\n', split) + 4)).toBe('q'.repeat(128 * 1024));
    expect(owner.ended).toEqual([[first, true], [queued, true]]);
    socket.destroy();
  });

  it('a queued answer cut before its turn: the one before it goes out whole, then the connection is cut', async () => {
    const { socket, received, closed, owner, first, queued, listener } = await queuedBehindFirst();
    first.writeHead(200, ['content-length', '5']);
    queued.writeHead(200, ['content-length', '100']);
    queued.write(Buffer.from('partial'));
    queued.destroy();
    // Its exchange is over now; the connection stays until its turn.
    expect(listener.done).toEqual([false]);
    expect(socket.destroyed).toBe(false);
    expect(owner.ended).toEqual([]);
    first.end('whole');
    queued.promote();
    await closed;
    expect(received()).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nwhole$/);
    expect(owner.ended).toEqual([[first, true], [queued, false]]);
  });
});
