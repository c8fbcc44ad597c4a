// Our HTTP/1.1 client for the service, against real servers on loopback: Node's own http server
// for well-behaved answers, and raw TCP servers that send exactly the bytes a test needs
// (smuggled second answers, garbage, a close right after a request arrives).
import { createHash } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, Socket as NetSocket, type Server as TcpServer, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { CHUNKED, UpstreamCall, UpstreamPool, type UpstreamError } from '../../src/forward/upstream-pool.ts';

interface Outcome {
  status?: number;
  headers?: string[];
  body: Buffer;
  error?: UpstreamError;
  responseStarted?: boolean;
  /** The service switched protocols: what the pool handed over. */
  switched?: { headers: string[]; socket: Socket; rest: Buffer };
}

interface Options {
  method?: string;
  headers?: string[];
  body?: Readable | Buffer;
  /** The body's length, or CHUNKED. */
  bodyLength?: number;
  /** Called with the call once sent; e.g. to abort it. */
  onCall?: (call: UpstreamCall) => void;
  /** Make onData report backpressure on every n-th chunk, resuming shortly after. */
  pauseEvery?: number;
  /** Ask the service to switch to this protocol. */
  upgrade?: string;
}

function exchange(pool: UpstreamPool, path: string, options: Options = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let seen = 0;
    const outcome: Outcome = { body: Buffer.alloc(0) };
    const call = new UpstreamCall(options.method ?? 'GET', path, options.headers ?? [], options.body ?? null, options.bodyLength, {
      onHead(status, headers) {
        outcome.status = status;
        outcome.headers = headers;
      },
      onData(chunk) {
        chunks.push(Buffer.from(chunk));
        if (options.pauseEvery && ++seen % options.pauseEvery === 0) {
          setTimeout(() => call.resume(), 2);
          return false;
        }
        return true;
      },
      onEnd(last) {
        if (last) chunks.push(Buffer.from(last));
        outcome.body = Buffer.concat(chunks);
        resolve(outcome);
      },
      onError(error, responseStarted) {
        outcome.error = error;
        outcome.responseStarted = responseStarted;
        outcome.body = Buffer.concat(chunks);
        resolve(outcome);
      },
      // Every exchange here could take a switch: only one that asked for it may get one.
      onUpgrade(status, headers, socket, rest) {
        outcome.status = status;
        outcome.switched = { headers, socket, rest: Buffer.from(rest) };
        cleanups.push(() => void socket.destroy());
        resolve(outcome);
      },
    }, options.upgrade);
    pool.dispatch(call);
    options.onCall?.(call);
  });
}

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function httpServer(handler: (req: IncomingMessage, res: ServerResponse) => void, options: { keepAliveTimeout?: number } = {}): Promise<{ server: Server; url: string; connections: () => number }> {
  const server = createHttpServer({ keepAliveTimeout: options.keepAliveTimeout ?? 5000 }, handler);
  let connections = 0;
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, connections: () => connections };
}

/** A TCP server that answers the n-th request line it sees (counted over all connections) with `answer(n, socket)`. */
async function rawServer(answer: (n: number, socket: Socket, request: string) => void): Promise<{ server: TcpServer; url: string; connections: () => number }> {
  let requests = 0;
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = createTcpServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      for (let end = text.indexOf('\r\n\r\n'); end !== -1; end = text.indexOf('\r\n\r\n')) {
        const request = text.slice(0, end);
        text = text.slice(end + 4);
        answer(++requests, socket, request);
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise((resolve) => server.close(resolve));
  });
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, connections: () => connections };
}

function pool(url: string, options: Partial<{ timeoutMs: number; connectTimeoutMs: number; connections: number; idleTimeoutMs: number }> = {}): UpstreamPool {
  const made = new UpstreamPool({ url, timeoutMs: 2000, connectTimeoutMs: 1000, connections: 8, ...options });
  cleanups.push(() => made.close());
  return made;
}

describe('UpstreamPool: exchanges', () => {
  it('keeps one connection alive across sequential requests, sends the headers given and adds Host if missing', async () => {
    const seen: string[][] = [];
    const service = await httpServer((req, res) => {
      seen.push(req.rawHeaders);
      res.end(`you asked for ${req.url}`);
    });
    const upstream = pool(service.url);
    for (let i = 0; i < 20; i++) {
      const r = await exchange(upstream, `/items/${i}?q=1`, { headers: ['x-request-id', `r${i}`] });
      expect(r.status).toBe(200);
      expect(r.body.toString()).toBe(`you asked for /items/${i}?q=1`);
    }
    expect(service.connections()).toBe(1);
    expect(seen[0]).toEqual(['x-request-id', 'r0', 'host', service.url.slice('http://'.length)]);
    const withHost = await exchange(upstream, '/h', { headers: ['Host', 'orders.internal'] });
    expect(withHost.status).toBe(200);
    expect(seen.at(-1)).toEqual(['Host', 'orders.internal']);
  });

  it('opens no more than `connections` sockets and queues the rest', async () => {
    let inFlight = 0;
    let peak = 0;
    const service = await httpServer((req, res) => {
      peak = Math.max(peak, ++inFlight);
      setTimeout(() => {
        inFlight--;
        res.end(req.url);
      }, 20);
    });
    const upstream = pool(service.url, { connections: 2 });
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => exchange(upstream, `/${i}`)));
    expect(results.map((r) => r.body.toString())).toEqual(Array.from({ length: 12 }, (_, i) => `/${i}`));
    expect(peak).toBe(2);
    expect(service.connections()).toBe(2);
  });

  it('streams an 8 MiB chunked download intact while the consumer pauses it', async () => {
    const block = Buffer.alloc(64 * 1024, 7);
    const service = await httpServer((_req, res) => {
      let sent = 0;
      const pump = (): void => {
        while (sent < 128) {
          sent++;
          if (!res.write(block)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
    });
    const r = await exchange(pool(service.url), '/big', { pauseEvery: 3 });
    expect(r.error).toBeUndefined();
    expect(r.headers).toContain('transfer-encoding');
    expect(r.body.length).toBe(8 * 1024 * 1024);
    expect(createHash('sha256').update(r.body).digest('hex')).toBe(createHash('sha256').update(Buffer.concat(Array.from({ length: 128 }, () => block))).digest('hex'));
  });

  it('sends a body already read whole (a JSON-RPC route\'s) as it is, with its Content-Length, and keeps the connection', async () => {
    const received: string[] = [];
    const service = await httpServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        received.push(`${req.headers['content-length']} ${req.headers['transfer-encoding'] ?? '-'} ${Buffer.concat(chunks).toString('latin1')}`);
        res.end('ok');
      });
    });
    const upstream = pool(service.url);
    const body = Buffer.from('{ "jsonrpc":"2.0", "id":1, "method":"tools/call", "params":{"name":"lookup_order"} }\n');
    for (let i = 0; i < 5; i++) {
      const answer = await exchange(upstream, '/mcp', { method: 'POST', headers: ['content-type', 'application/json'], body, bodyLength: body.length });
      expect(answer.body.toString()).toBe('ok');
    }
    expect(received).toEqual(Array.from({ length: 5 }, () => `${body.length} - ${body.toString('latin1')}`));
    expect(service.connections()).toBe(1);
  });

  it('sends a body with its Content-Length, or chunk-framed when it has none', async () => {
    const service = await httpServer((req, res) => {
      const hash = createHash('sha256');
      req.on('data', (chunk: Buffer) => hash.update(chunk));
      req.on('end', () => res.end(`${req.headers['content-length'] ?? '-'} ${req.headers['transfer-encoding'] ?? '-'} ${hash.digest('hex')}`));
    });
    const upstream = pool(service.url);
    const payload = Buffer.alloc(300_000, 'a');
    const expected = createHash('sha256').update(payload).digest('hex');
    const sized = await exchange(upstream, '/up', { method: 'POST', bodyLength: payload.length, body: Readable.from([payload.subarray(0, 1000), payload.subarray(1000)]) });
    expect(sized.body.toString()).toBe(`300000 - ${expected}`);
    const chunked = await exchange(upstream, '/up', { method: 'POST', bodyLength: CHUNKED, body: Readable.from([Buffer.alloc(0), payload.subarray(0, 5), payload.subarray(5)]) });
    expect(chunked.body.toString()).toBe(`- chunked ${expected}`);
    // An empty POST still says so: Content-Length: 0.
    const empty = await exchange(upstream, '/up', { method: 'POST', bodyLength: 0 });
    expect(empty.body.toString()).toBe(`0 - ${createHash('sha256').digest('hex')}`);
    expect(service.connections()).toBe(1);
  });

  it('relays HEAD, 204 and 304 answers without waiting for a body, and keeps the connection', async () => {
    const service = await httpServer((req, res) => {
      if (req.url === '/204') res.writeHead(204).end();
      else if (req.url === '/304') res.writeHead(304, { etag: '"x"' }).end();
      else res.writeHead(200, { 'content-length': 10 }).end(req.method === 'HEAD' ? undefined : '0123456789');
    });
    const upstream = pool(service.url);
    expect(await exchange(upstream, '/head', { method: 'HEAD' })).toMatchObject({ status: 200, body: Buffer.alloc(0) });
    expect(await exchange(upstream, '/204')).toMatchObject({ status: 204 });
    expect(await exchange(upstream, '/304')).toMatchObject({ status: 304 });
    expect((await exchange(upstream, '/get')).body.toString()).toBe('0123456789');
    expect(service.connections()).toBe(1);
  });

  it('skips 103 Early Hints and delivers the final answer', async () => {
    const service = await httpServer((_req, res) => {
      res.writeEarlyHints({ link: '</style.css>; rel=preload' });
      res.end('final');
    });
    expect(await exchange(pool(service.url), '/')).toMatchObject({ status: 200, body: Buffer.from('final') });
  });

  it('reads a body that runs until close, and then opens a new connection', async () => {
    const service = await rawServer((n, socket) => {
      socket.end(`HTTP/1.1 200 OK\r\nX-N: ${n}\r\n\r\nuntil close ${n}`);
    });
    const upstream = pool(service.url);
    expect((await exchange(upstream, '/a')).body.toString()).toBe('until close 1');
    expect((await exchange(upstream, '/b')).body.toString()).toBe('until close 2');
    expect(service.connections()).toBe(2);
  });
});

describe('UpstreamPool: a service out of step never reaches the next exchange', () => {
  it('drops the connection when bytes follow a complete answer (a smuggled second answer)', async () => {
    const service = await rawServer((n, socket) => {
      if (n === 1) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil');
      else socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh`);
    });
    const upstream = pool(service.url);
    expect((await exchange(upstream, '/1')).body.toString()).toBe('ok');
    expect((await exchange(upstream, '/2')).body.toString()).toBe('fresh');
    expect(service.connections()).toBe(2);
  });

  it('drops an idle connection that receives bytes nobody asked for', async () => {
    const service = await rawServer((n, socket) => {
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n${n}!`);
      if (n === 1) setTimeout(() => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil'), 20);
    });
    const upstream = pool(service.url);
    expect((await exchange(upstream, '/1')).body.toString()).toBe('1!');
    await new Promise((r) => setTimeout(r, 100));
    expect((await exchange(upstream, '/2')).body.toString()).toBe('2!');
    expect(service.connections()).toBe(2);
  });

  it('answers a malformed or ambiguous answer with upstream_unavailable and never reuses that connection', async () => {
    const service = await rawServer((n, socket) => {
      if (n === 1) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
      else if (n === 2) socket.write('garbage\r\n\r\n');
      else socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    });
    const upstream = pool(service.url);
    const first = await exchange(upstream, '/1');
    expect(first.error).toMatchObject({ reason: 'upstream_unavailable', code: 'ERR_BAD_RESPONSE' });
    expect(first.responseStarted).toBe(false);
    expect((await exchange(upstream, '/2')).error).toMatchObject({ reason: 'upstream_unavailable', code: 'ERR_BAD_RESPONSE' });
    expect((await exchange(upstream, '/3')).body.toString()).toBe('ok');
    expect(service.connections()).toBe(3);
  });

  it('reports a body cut short after the head as a failure with the response started', async () => {
    const service = await rawServer((_n, socket) => {
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial');
      setTimeout(() => socket.destroy(), 20);
    });
    const r = await exchange(pool(service.url), '/');
    expect(r.error).toMatchObject({ reason: 'upstream_unavailable' });
    expect(r.responseStarted).toBe(true);
    expect(r.body.toString()).toBe('partial');
  });

  it('refuses to send anything that could split or bend the request head', async () => {
    const received: string[] = [];
    const service = await rawServer((_n, socket, request) => {
      received.push(request);
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    });
    const upstream = pool(service.url);
    const attempts: [string, Options][] = [
      ['/', { headers: ['x-jit-grant-id', 'a\r\nX-Admin: 1'] }],
      // Written as latin1, U+010D U+010A would become CR LF.
      ['/', { headers: ['x-note', 'a\u010d\u010ax-forwarded-client-cert: forged'] }],
      ['/', { headers: ['x bad name', '1'] }],
      ['/', { headers: ['x-a', 'tab\tok', 'x-b', 'nul\u0000'] }],
      ['/', { method: 'GET /admin HTTP/1.1\r\nx:' }],
      ['/a b', {}],
      ['/a\r\nx: 1', {}],
    ];
    for (const [path, options] of attempts) {
      expect((await exchange(upstream, path, options)).error, JSON.stringify([path, options])).toMatchObject({ reason: 'upstream_unavailable', code: 'ERR_INVALID_HEADER' });
    }
    expect(received).toEqual([]);
    // Tabs inside values and latin1 text are fine.
    expect((await exchange(upstream, '/ok', { headers: ['x-a', 'tab\tok', 'x-b', 'caf\u00e9'] })).status).toBe(200);
    expect(received).toHaveLength(1);
  });

  it('frames the body itself: no Content-Length or Transfer-Encoding comes from the caller\'s headers', async () => {
    const received: string[] = [];
    const service = await rawServer((_n, socket, request) => {
      received.push(request);
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    });
    await exchange(pool(service.url), '/up', { method: 'PUT', bodyLength: 3, body: Readable.from([Buffer.from('abc')]) });
    expect(received[0]).toMatch(/\r\ncontent-length: 3$/);
    expect(received[0]).not.toMatch(/transfer-encoding/i);
  });
});

describe('UpstreamPool: failures and limits', () => {
  it('sends a bodiless request again, once, when a kept-alive connection closes as it is sent; never one with a body', async () => {
    const service = await rawServer((n, socket) => {
      // The first request on each connection is answered; a second one on the same connection finds it closing.
      if (n % 2 === 0) socket.destroy();
      else socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n${n % 10}`);
    });
    const upstream = pool(service.url, { idleTimeoutMs: 60_000 });
    expect((await exchange(upstream, '/1')).body.toString()).toBe('1');
    // Sent on the kept connection (request 2: closed), then again on a new one (request 3).
    expect((await exchange(upstream, '/2')).body.toString()).toBe('3');
    const posted = await exchange(upstream, '/3', { method: 'POST', bodyLength: 2, body: Readable.from([Buffer.from('hi')]) });
    expect(posted.error).toMatchObject({ reason: 'upstream_unavailable', code: 'ERR_CONNECTION_CLOSED' });
    // Nor one that is not idempotent, even without a body: the service may have acted on it.
    expect((await exchange(upstream, '/4')).body.toString()).toBe('5');
    const emptyPost = await exchange(upstream, '/5', { method: 'POST', bodyLength: 0 });
    expect(emptyPost.error).toMatchObject({ code: 'ERR_CONNECTION_CLOSED' });
  });

  it('answers upstream_timeout when the service is silent past the timeout, and upstream_unavailable when nothing listens', async () => {
    const silent = await rawServer(() => undefined);
    const started = Date.now();
    const slow = await exchange(pool(silent.url, { timeoutMs: 200 }), '/');
    expect(slow.error).toMatchObject({ reason: 'upstream_timeout' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(Date.now() - started).toBeLessThan(1500);
    const gone = await rawServer(() => undefined);
    const url = gone.url;
    await new Promise((resolve) => gone.server.close(resolve));
    expect((await exchange(pool(url), '/')).error).toMatchObject({ reason: 'upstream_unavailable', code: 'ERR_CONNECT_FAILED' });
  });

  it('closes the connection when the caller aborts mid-answer', async () => {
    let closed = false;
    const service = await httpServer((_req, res) => {
      res.write('first part');
      res.on('close', () => (closed = true));
    });
    let call: UpstreamCall | undefined;
    const pending = exchange(pool(service.url), '/', { onCall: (c) => (call = c) });
    await new Promise((r) => setTimeout(r, 100));
    call!.abort();
    await new Promise((r) => setTimeout(r, 100));
    expect(closed).toBe(true);
    // An aborted exchange reports nothing further to its caller.
    const settled = await Promise.race([pending.then(() => 'settled'), new Promise((r) => setTimeout(() => r('silent'), 100))]);
    expect(settled).toBe('silent');
  });

  it('does not reuse a connection whose answer came before the request body was sent', async () => {
    const service = await rawServer((_n, socket) => socket.write('HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\n\r\nbig'));
    const upstream = pool(service.url);
    const endless = new Readable({ read() {} });
    endless.push(Buffer.alloc(1000));
    const r = await exchange(upstream, '/up', { method: 'POST', bodyLength: 1_000_000, body: endless });
    expect(r.status).toBe(413);
    expect((await exchange(upstream, '/next')).status).toBe(413);
    expect(service.connections()).toBe(2);
    endless.destroy();
  });

  it('honours the service\'s Keep-Alive timeout hint (less a second) for idle connections', async () => {
    const service = await rawServer((_n, socket) => socket.write('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1\r\nContent-Length: 0\r\n\r\n'));
    const upstream = pool(service.url, { idleTimeoutMs: 60_000 });
    await exchange(upstream, '/');
    await new Promise((r) => setTimeout(r, 400));
    await exchange(upstream, '/');
    expect(service.connections()).toBe(2);
  });

  it('never sends on an idle connection past its limit, even before the sweep has closed it', async () => {
    // Long timeouts make the sweep run once a second; the idle limit is far shorter.
    const service = await httpServer((_req, res) => res.end('ok'), { keepAliveTimeout: 60_000 });
    const upstream = pool(service.url, { timeoutMs: 16_000, connectTimeoutMs: 16_000, idleTimeoutMs: 150 });
    expect((await exchange(upstream, '/', { method: 'POST' })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 400));
    expect((await exchange(upstream, '/', { method: 'POST' })).status).toBe(200);
    expect(service.connections()).toBe(2);
  });

  it('close() lets the exchange in flight finish, then refuses new ones; closing twice resolves both', async () => {
    const service = await httpServer((_req, res) => setTimeout(() => res.end('late'), 150));
    const upstream = new UpstreamPool({ url: service.url, timeoutMs: 2000, connectTimeoutMs: 1000, connections: 4 });
    const inFlight = exchange(upstream, '/');
    await new Promise((r) => setTimeout(r, 30));
    const closed = upstream.close();
    const closedAgain = upstream.close();
    expect((await inFlight).body.toString()).toBe('late');
    await Promise.all([closed, closedAgain]);
    expect((await exchange(upstream, '/')).error).toMatchObject({ code: 'ERR_POOL_CLOSED' });
  });

  it('reports an answer read until close that ends in a reset as a failure, not as complete', async () => {
    const service = await rawServer((_n, socket) => {
      socket.write('HTTP/1.1 200 OK\r\n\r\n{"items":[1,2,');
      setTimeout(() => socket.resetAndDestroy(), 30);
    });
    const r = await exchange(pool(service.url), '/');
    expect(r.error).toMatchObject({ reason: 'upstream_unavailable', code: 'ERR_CONNECTION_CLOSED' });
    expect(r.responseStarted).toBe(true);
  });

  it('does not blame the service for a client that reads slowly: the answer completes past upstream.timeout', async () => {
    const block = Buffer.alloc(64 * 1024, 1);
    const service = await httpServer((_req, res) => {
      for (let i = 0; i < 16; i++) res.write(block);
      res.end();
    });
    const chunks: number[] = [];
    const r = await new Promise<Outcome>((resolve) => {
      const call = new UpstreamCall('GET', '/', [], null, undefined, {
        onHead() {},
        onData(chunk) {
          chunks.push(chunk.length);
          // Stall well past the 150 ms timeout, once.
          if (chunks.length === 1) {
            setTimeout(() => call.resume(), 500);
            return false;
          }
          return true;
        },
        onEnd(last) {
          if (last) chunks.push(last.length);
          resolve({ body: Buffer.alloc(0) });
        },
        onError(error) {
          resolve({ body: Buffer.alloc(0), error });
        },
      });
      pool(service.url, { timeoutMs: 150 }).dispatch(call);
    });
    expect(r.error).toBeUndefined();
    expect(chunks.reduce((a, b) => a + b, 0)).toBe(16 * block.length);
  });

  it('times out a queued request while every connection stays busy, and drops aborted ones from the queue at once', async () => {
    const service = await httpServer((_req, res) => {
      res.write('streaming');
      setTimeout(() => res.end(), 1500);
    });
    const upstream = pool(service.url, { connections: 1, timeoutMs: 300 });
    const busy = exchange(upstream, '/busy');
    const calls: UpstreamCall[] = [];
    for (let i = 0; i < 50; i++) void exchange(upstream, `/aborted-${i}`, { onCall: (c) => calls.push(c) });
    for (const call of calls) call.abort();
    expect(calls.every((call) => call.queuedIn === undefined)).toBe(true);
    const started = Date.now();
    const queued = await exchange(upstream, '/queued');
    expect(queued.error).toMatchObject({ reason: 'upstream_timeout', code: 'ERR_QUEUE_TIMEOUT' });
    expect(Date.now() - started).toBeLessThan(1200);
    expect((await busy).body.toString()).toBe('streaming');
  });

  it('refuses an https:// upstream rather than send in the clear what was meant for TLS', () => {
    expect(() => new UpstreamPool({ url: 'https://127.0.0.1:8443', timeoutMs: 1000, connectTimeoutMs: 1000, connections: 1 })).toThrow(/http:\/\/host:port/);
  });

  it('talks to a service on a unix socket', async () => {
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const folder = mkdtempSync(`${tmpdir()}/pool-`);
    const path = `${folder}/s.sock`;
    cleanups.push(async () => (await import('node:fs')).rmSync(folder, { recursive: true, force: true }));
    const server = createHttpServer((req, res) => res.end(`unix ${req.headers.host}`));
    await new Promise<void>((resolve) => server.listen(path, resolve));
    cleanups.push(() => new Promise((resolve) => server.close(resolve)));
    expect((await exchange(pool(`unix:${path}`), '/')).body.toString()).toBe('unix localhost');
  });
});

async function until(test: () => boolean, ms = 2000): Promise<void> {
  for (const deadline = Date.now() + ms; !test() && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 10));
}

describe('UpstreamPool: upgrades', () => {
  it('writes an upgrade request\'s head exactly like any request\'s (same header rules, Host default) plus the upgrade pair, always on a fresh connection', async () => {
    const received: string[] = [];
    /** The service's side of the connection each request came on. */
    const on: Socket[] = [];
    const service = await rawServer((_n, socket, request) => {
      received.push(request);
      on.push(socket);
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    });
    const upstream = pool(service.url);
    const headers = ['x-request-id', 'r1', 'User-Agent', 'test'];
    expect((await exchange(upstream, '/feed?x=1', { headers })).status).toBe(200);
    // An idle connection is there; the upgrade does not take it, and its own is not kept.
    const refused = await exchange(upstream, '/feed?x=1', { headers, upgrade: 'websocket' });
    expect([refused.status, refused.body.toString(), refused.switched]).toEqual([200, 'ok', undefined]);
    expect(received[1]).toBe(received[0] + '\r\nconnection: upgrade\r\nupgrade: websocket');
    expect(received[0]).toBe(`GET /feed?x=1 HTTP/1.1\r\nx-request-id: r1\r\nUser-Agent: test\r\nhost: ${service.url.slice('http://'.length)}`);
    expect((await exchange(upstream, '/next')).status).toBe(200);
    expect(service.connections()).toBe(2);
    expect([on[1] !== on[0], on[2] === on[0]]).toEqual([true, true]);
    await until(() => on[1]!.destroyed);
    expect(on[1]!.destroyed).toBe(true);
    await exchange(upstream, '/again', { headers: ['Host', 'feed.internal'], upgrade: 'websocket' });
    expect(received.at(-1)).toBe('GET /again HTTP/1.1\r\nHost: feed.internal\r\nconnection: upgrade\r\nupgrade: websocket');
    expect(service.connections()).toBe(3);
    // The same refusals as any request's, and a token that could split the head is one too.
    const bad: [string, Options][] = [['/', { headers: ['x-a', 'a\r\nx-admin: 1'] }], ['/a b', {}], ['/', { upgrade: 'websocket\r\nx-admin: 1' }], ['/', { upgrade: '' }]];
    for (const [path, options] of bad) {
      expect((await exchange(upstream, path, { upgrade: 'websocket', ...options })).error, JSON.stringify([path, options])).toMatchObject({ reason: 'upstream_unavailable', code: 'ERR_INVALID_HEADER' });
    }
    expect(received).toHaveLength(4);
  });

  it('a 101 to a request that did not ask for an upgrade is a broken answer (upstream_unavailable, 502), nothing handed over', async () => {
    const service = await rawServer((_n, socket) => socket.write('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\nnew protocol'));
    const r = await exchange(pool(service.url), '/plain');
    expect(r.switched).toBeUndefined();
    expect(r.error).toMatchObject({ reason: 'upstream_unavailable', code: 'ERR_BAD_RESPONSE' });
    expect(r.responseStarted).toBe(false);
  });

  it('on 101 hands the socket over with the bytes read after the head; neither waiting nor switched, an upgrade holds a slot of `connections`', async () => {
    let serviceSide: Socket | undefined;
    const service = await rawServer((_n, socket, request) => {
      if (!request.includes('upgrade: websocket')) {
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain');
        return;
      }
      serviceSide = socket;
      // Answered late: a plain request meanwhile is not queued behind it.
      setTimeout(() => socket.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nfirst frame'), 300);
    });
    const upstream = pool(service.url, { connections: 1 });
    const upgrading = exchange(upstream, '/feed', { upgrade: 'websocket' });
    const started = Date.now();
    expect((await exchange(upstream, '/plain')).body.toString()).toBe('plain');
    expect(Date.now() - started).toBeLessThan(250);
    const { status, switched } = await upgrading;
    expect(status).toBe(101);
    expect(switched!.headers).toEqual(['connection', 'Upgrade', 'upgrade', 'websocket']);
    expect(switched!.rest.toString()).toBe('first frame');
    // None of the pool's listeners stay on it, and Node's own (on 'end') do.
    const socket = switched!.socket;
    expect(['connect', 'data', 'drain', 'error', 'close'].map((event) => socket.listenerCount(event))).toEqual([0, 0, 0, 0, 0]);
    expect(socket.listenerCount('end')).toBe(new NetSocket().listenerCount('end'));
    // Out of the pool: closing it waits for nothing, and the tunnel's socket still carries bytes.
    await upstream.close();
    const heard = new Promise<string>((resolve) => serviceSide!.once('data', (chunk: Buffer) => resolve(chunk.toString())));
    switched!.socket.write('ping');
    expect(await heard).toBe('ping');
    expect(switched!.socket.destroyed).toBe(false);
  });

  it('an upgrade the service never answers ends in upstream_timeout, as any request', async () => {
    const service = await rawServer(() => undefined);
    const started = Date.now();
    const r = await exchange(pool(service.url, { timeoutMs: 150 }), '/feed', { upgrade: 'websocket' });
    expect(r.error).toMatchObject({ reason: 'upstream_timeout', code: 'ERR_UPSTREAM_TIMEOUT' });
    expect(Date.now() - started).toBeLessThan(1000);
  });
});
