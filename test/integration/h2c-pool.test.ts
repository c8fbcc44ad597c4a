// The h2c pool against real services: node:http2 servers in clear (TCP and unix socket) for
// HTTP/2 behaviour (limits, GOAWAY, resets, flow control), and a grpc-js server for the four
// kinds of gRPC call, driven by gRPC-framed requests as a proxy would forward them.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { constants, connect as connectHttp2, createServer, type Http2Server, type Http2Session, type ServerHttp2Stream, type IncomingHttpHeaders, type Settings } from 'node:http2';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { H2cPool, type H2cPoolOptions } from '../../src/forward/h2c-pool.ts';
import { field, send } from '../support/h2c.ts';

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

type Handler = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, raw: string[]) => void;

interface Service {
  server: Http2Server;
  url: string;
  /** Sessions the service accepted so far. */
  sessions: Http2Session[];
  /** Most streams open at once on any one session. */
  maxActive(): number;
}

async function h2Service(handler: Handler, options: { settings?: Settings; socketPath?: string } = {}): Promise<Service> {
  const server = createServer({ settings: options.settings });
  const sessions: Http2Session[] = [];
  let maxActive = 0;
  server.on('session', (session) => {
    sessions.push(session);
    let active = 0;
    session.on('stream', (stream: ServerHttp2Stream) => {
      maxActive = Math.max(maxActive, ++active);
      stream.on('close', () => active--);
    });
  });
  server.on('stream', (stream, headers, _flags, raw) => {
    stream.on('error', () => {});
    handler(stream, headers, raw);
  });
  await new Promise<void>((resolve) => (options.socketPath ? server.listen(options.socketPath, resolve) : server.listen(0, '127.0.0.1', resolve)));
  cleanups.push(() => {
    for (const session of sessions) session.destroy();
    return new Promise((resolve) => server.close(resolve));
  });
  const url = options.socketPath ? `unix:${options.socketPath}` : `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return { server, url, sessions, maxActive: () => maxActive };
}

function pool(url: string, options: Partial<H2cPoolOptions> = {}): H2cPool {
  const p = new H2cPool({ url, timeoutMs: 2000, connectTimeoutMs: 1000, maxSessions: 4, ...options });
  cleanups.push(() => p.close());
  return p;
}

function tempSocket(): string {
  const dir = mkdtempSync(join(tmpdir(), 'h2c-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'service.sock');
}

/** Answers 200 with the request's body and a few fields. */
const echo: Handler = (stream, headers) => {
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  stream.on('end', () => {
    stream.respond({ ':status': 200, 'x-method': headers[':method'], 'x-path': headers[':path'], 'x-authority': headers[':authority'], 'set-cookie': ['a=1', 'b=2'] });
    stream.end(Buffer.concat(chunks));
  });
};

describe('h2c pool: exchanges', () => {
  it('forwards a request and relays the answer, its fields and no pseudo-header', async () => {
    const service = await h2Service(echo);
    const out = await send(pool(service.url), '/hello?x=1', { headers: ['x-request-id', 'r1'], authority: 'svc.internal' }).done;
    expect(out.error).toBeUndefined();
    expect(out.status).toBe(200);
    expect(field(out.headers, 'x-method')).toBe('GET');
    expect(field(out.headers, 'x-path')).toBe('/hello?x=1');
    expect(field(out.headers, 'x-authority')).toBe('svc.internal');
    expect(out.headers!.filter((name, i) => i % 2 === 0 && name === 'set-cookie')).toHaveLength(2);
    expect(out.headers!.some((name, i) => i % 2 === 0 && name.startsWith(':'))).toBe(false);
  });

  it('uses the pool host as :authority when the request names none, and drops connection-specific and pseudo fields it is given', async () => {
    let seen: string[] = [];
    const service = await h2Service((stream, _headers, raw) => {
      seen = raw;
      stream.respond({ ':status': 204 });
      stream.end();
    });
    const out = await send(pool(service.url), '/x', { headers: ['connection', 'close', ':path', '/evil', 'host', 'other', 'te', 'gzip', 'x-ok', '1'] }).done;
    expect(out.status).toBe(204);
    const names = seen.filter((_, i) => i % 2 === 0);
    expect(names).toEqual([':method', ':scheme', ':authority', ':path', 'x-ok']);
    expect(field(seen, ':authority')).toBe(new URL(service.url).host);
    expect(field(seen, ':path')).toBe('/x');
  });

  it('streams a request body and relays response trailers to onEnd', async () => {
    const service = await h2Service((stream) => {
      const hash = createHash('sha256');
      stream.on('data', (chunk: Buffer) => hash.update(chunk));
      stream.on('end', () => {
        stream.respond({ ':status': 200 }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'x-sha256': hash.digest('hex'), 'x-done': 'yes' }));
        stream.end('ok');
      });
    });
    const data = Buffer.alloc(3 * 1024 * 1024, 7);
    const out = await send(pool(service.url), '/up', { body: Readable.from([data.subarray(0, 1000), data.subarray(1000)]) }).done;
    expect(out.body.toString()).toBe('ok');
    expect(field(out.trailers, 'x-sha256')).toBe(createHash('sha256').update(data).digest('hex'));
    expect(field(out.trailers, 'x-done')).toBe('yes');
  });

  it('sends the request trailers an inbound Http2Stream carries (a real client through a relay)', async () => {
    let trailersSeen: IncomingHttpHeaders | undefined;
    let bodySeen = '';
    const service = await h2Service((stream) => {
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => (bodySeen += chunk));
      stream.on('trailers', (trailers: IncomingHttpHeaders) => (trailersSeen = trailers));
      stream.on('end', () => {
        stream.respond({ ':status': 200 });
        stream.end('thanks');
      });
    });
    const upstream = pool(service.url);
    const relay = await relayTo(upstream);
    const client = connectHttp2(relay);
    cleanups.push(() => void client.destroy());
    const request = client.request({ ':method': 'POST', ':path': '/t' }, { waitForTrailers: true });
    request.on('wantTrailers', () => request.sendTrailers({ 'x-checksum': 'abc' }));
    request.end('payload');
    const answer = await readAll(request);
    expect(answer).toBe('thanks');
    expect(bodySeen).toBe('payload');
    expect(trailersSeen?.['x-checksum']).toBe('abc');
  });

  it('reaches a service on a unix socket', async () => {
    const service = await h2Service(echo, { socketPath: tempSocket() });
    const out = await send(pool(service.url), '/over-unix', { body: Readable.from([Buffer.from('hi')]) }).done;
    expect(out.status).toBe(200);
    expect(out.body.toString()).toBe('hi');
    expect(field(out.headers, 'x-authority')).toBe('localhost');
  });

  it('reuses one session for calls one after another', async () => {
    const service = await h2Service(echo);
    const p = pool(service.url);
    for (let i = 0; i < 5; i++) expect((await send(p, `/n${i}`).done).status).toBe(200);
    expect(service.sessions).toHaveLength(1);
  });
});

/** A minimal h2c front door: each inbound stream forwarded through the pool, with backpressure both ways. */
async function relayTo(upstream: H2cPool): Promise<string> {
  const front = createServer();
  front.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    const call = upstream.request({
      method: headers[':method']!,
      path: headers[':path']!,
      headers: [],
      body: headers[':method'] === 'GET' ? null : stream,
      exchange: {
        onHead(status, fields) {
          const out: Record<string, string | string[]> = { ':status': String(status) };
          for (let i = 0; i < fields.length; i += 2) out[fields[i]!] = fields[i + 1]!;
          stream.respond(out, { waitForTrailers: true });
        },
        onData(chunk) {
          return stream.write(chunk);
        },
        onEnd(last, trailers) {
          stream.on('wantTrailers', () => {
            const out: Record<string, string> = {};
            for (let i = 0; trailers && i < trailers.length; i += 2) out[trailers[i]!] = trailers[i + 1]!;
            stream.sendTrailers(out);
          });
          stream.end(last);
        },
        onError() {
          stream.close(constants.NGHTTP2_INTERNAL_ERROR);
        },
      },
    });
    stream.on('drain', () => call.resume());
    stream.on('close', () => call.abort());
  });
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => front.close(resolve)));
  return `http://127.0.0.1:${(front.address() as { port: number }).port}`;
}

function readAll(stream: Readable): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => (text += chunk));
    stream.on('end', () => resolve(text));
    stream.on('error', reject);
  });
}

describe('h2c pool: failures', () => {
  it('fails upstream_unavailable when the service is down', async () => {
    const closed = createTcpServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as { port: number }).port;
    await new Promise((resolve) => closed.close(resolve));
    const p = pool(`http://127.0.0.1:${port}`);
    const [a, b] = await Promise.all([send(p, '/a').done, send(p, '/b').done]);
    expect(a.error?.reason).toBe('upstream_unavailable');
    expect(a.error?.code).toBe('ERR_CONNECT_FAILED');
    expect(a.responseStarted).toBe(false);
    expect(b.error?.reason).toBe('upstream_unavailable');
  });

  it('fails upstream_timeout when the service accepts but never completes the HTTP/2 handshake', async () => {
    const sockets: Socket[] = [];
    const silent = createTcpServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => silent.close(resolve));
    });
    const p = pool(`http://127.0.0.1:${(silent.address() as { port: number }).port}`, { connectTimeoutMs: 200, timeoutMs: 5000 });
    const started = performance.now();
    const out = await send(p, '/a').done;
    expect(out.error?.reason).toBe('upstream_timeout');
    expect(out.error?.code).toBe('ERR_CONNECT_TIMEOUT');
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('fails upstream_timeout when no head comes in time, and resets the service stream', async () => {
    let serverRst: number | undefined;
    const service = await h2Service((stream) => {
      stream.on('close', () => (serverRst = stream.rstCode));
    });
    const started = performance.now();
    const out = await send(pool(service.url, { timeoutMs: 300 }), '/slow').done;
    const took = performance.now() - started;
    expect(out.error?.reason).toBe('upstream_timeout');
    expect(out.error?.code).toBe('ERR_UPSTREAM_TIMEOUT');
    expect(out.responseStarted).toBe(false);
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(1000);
    await waitFor(() => serverRst !== undefined);
    expect(serverRst).toBe(constants.NGHTTP2_CANCEL);
  });

  it('enforces the call idle timeout after the head, and none when it is undefined', async () => {
    const service = await h2Service((stream) => {
      stream.respond({ ':status': 200 });
      stream.write('first');
      setTimeout(() => !stream.destroyed && stream.end('late'), 700);
    });
    const p = pool(service.url, { timeoutMs: 200 });
    const idle = await send(p, '/idle', { idleTimeoutMs: 200 }).done;
    expect(idle.error?.reason).toBe('upstream_timeout');
    expect(idle.responseStarted).toBe(true);
    expect(idle.body.toString()).toBe('first');
    const long = await send(p, '/long').done;
    expect(long.error).toBeUndefined();
    expect(long.body.toString()).toBe('firstlate');
  });

  it('abort() resets the service stream with CANCEL and the sink hears nothing more', async () => {
    let closed: { rst: number | undefined; aborted: boolean } | undefined;
    const service = await h2Service((stream) => {
      let aborted = false;
      stream.on('aborted', () => (aborted = true));
      stream.on('close', () => (closed = { rst: stream.rstCode, aborted }));
      stream.respond({ ':status': 200 });
      stream.write('part');
    });
    let calls = 0;
    const sent = send(pool(service.url), '/a', { onChunk: () => calls++ });
    await waitFor(() => calls > 0);
    sent.call.abort();
    await waitFor(() => closed !== undefined);
    expect(closed).toEqual({ rst: constants.NGHTTP2_CANCEL, aborted: true });
    const settled = await Promise.race([sent.done.then(() => 'settled'), sleep(200).then(() => 'silent')]);
    expect(settled).toBe('silent');
  });

  it('fails upstream_unavailable when the service drops the connection mid-answer', async () => {
    const service = await h2Service((stream) => {
      stream.respond({ ':status': 200 });
      stream.write('part', () => stream.session!.destroy());
    });
    const out = await send(pool(service.url), '/a').done;
    expect(out.error?.reason).toBe('upstream_unavailable');
    expect(out.responseStarted).toBe(true);
  });

  it('a reset with NO_ERROR before the whole content-length arrived is a failure, not an end', async () => {
    const service = await h2Service((stream) => {
      stream.respond({ ':status': 200, 'content-length': '10' });
      stream.write('half', () => stream.close(constants.NGHTTP2_NO_ERROR));
    });
    const out = await send(pool(service.url), '/a').done;
    expect(out.error?.reason).toBe('upstream_unavailable');
    expect(out.error?.code).toBe('ERR_STREAM_RESET'); // nghttp2 checks content-length itself (RFC 9113 8.1.1)
    expect(out.responseStarted).toBe(true);
  });

  it('a stream the service resets with an error fails upstream_unavailable', async () => {
    const service = await h2Service((stream) => stream.close(constants.NGHTTP2_INTERNAL_ERROR));
    const out = await send(pool(service.url), '/a').done;
    expect(out.error?.reason).toBe('upstream_unavailable');
    expect(out.error?.code).toBe('ERR_STREAM_RESET');
  });
});

describe('h2c pool: concurrency limits and GOAWAY', () => {
  /** Answers after `delayMs`. */
  const slow = (delayMs: number): Handler => (stream, headers) => {
    stream.resume();
    setTimeout(() => {
      if (stream.destroyed) return;
      stream.respond({ ':status': 200 });
      stream.end(String(headers[':path']));
    }, delayMs);
  };

  it("respects the service's SETTINGS_MAX_CONCURRENT_STREAMS by opening another session", async () => {
    const service = await h2Service(slow(150), { settings: { maxConcurrentStreams: 1 } });
    const p = pool(service.url, { maxSessions: 3 });
    const first = await send(p, '/warm').done; // the first session learns the limit
    expect(first.status).toBe(200);
    const outs = await Promise.all([send(p, '/1').done, send(p, '/2').done, send(p, '/3').done]);
    expect(outs.map((o) => o.body.toString())).toEqual(['/1', '/2', '/3']);
    expect(service.maxActive()).toBe(1);
    expect(service.sessions).toHaveLength(3);
  });

  it('queues calls when every session is full, and serves them as streams free', async () => {
    const service = await h2Service(slow(100), { settings: { maxConcurrentStreams: 1 } });
    const p = pool(service.url, { maxSessions: 1 });
    const started = performance.now();
    const outs = await Promise.all([1, 2, 3, 4].map((n) => send(p, `/${n}`).done));
    expect(outs.map((o) => o.body.toString())).toEqual(['/1', '/2', '/3', '/4']);
    expect(performance.now() - started).toBeGreaterThanOrEqual(390);
    expect(service.sessions).toHaveLength(1);
    expect(service.maxActive()).toBe(1);
  });

  it('a queued call that waits past timeoutMs fails upstream_timeout; a full queue fails upstream_unavailable', async () => {
    const service = await h2Service(slow(600), { settings: { maxConcurrentStreams: 1 } });
    const p = pool(service.url, { maxSessions: 1, timeoutMs: 1000, maxQueued: 1 });
    await send(p, '/warm', {}).done;
    const busy = send(p, '/busy');
    await sleep(20);
    const queued = send(p, '/queued'); // waits for /busy (600 ms), then would need 600 more: past 1000
    const rejected = await send(p, '/rejected').done;
    expect(rejected.error?.reason).toBe('upstream_unavailable');
    expect(rejected.error?.code).toBe('ERR_QUEUE_FULL');
    expect((await busy.done).status).toBe(200);
    const q = await queued.done;
    expect(q.error?.reason === 'upstream_timeout' || q.status === 200).toBe(true);
    // A stream that holds the only slot (its head came, its body takes 600 ms) makes the next
    // call wait in the queue past timeoutMs.
    const holding = await h2Service(
      (stream) => {
        stream.resume();
        stream.respond({ ':status': 200 });
        setTimeout(() => !stream.destroyed && stream.end('held'), 600);
      },
      { settings: { maxConcurrentStreams: 1 } },
    );
    const p2 = pool(holding.url, { maxSessions: 1, timeoutMs: 300 });
    const busy2 = send(p2, '/busy2');
    await sleep(20);
    const waited = await send(p2, '/waits').done;
    expect(waited.error?.reason).toBe('upstream_timeout');
    expect(waited.error?.code).toBe('ERR_QUEUE_TIMEOUT');
    expect((await busy2.done).body.toString()).toBe('held');
  });

  it('GOAWAY mid-flight: the stream in flight finishes, the next call goes to a new session', async () => {
    let count = 0;
    const service = await h2Service((stream) => {
      stream.resume();
      if (++count === 1) {
        stream.session!.goaway(constants.NGHTTP2_NO_ERROR);
        setTimeout(() => {
          stream.respond({ ':status': 200 });
          stream.end('finished after goaway');
        }, 150);
      } else {
        stream.respond({ ':status': 200 });
        stream.end('new session');
      }
    });
    const p = pool(service.url);
    const first = send(p, '/first');
    await waitFor(() => count === 1);
    await sleep(50); // the GOAWAY has reached the pool
    const second = await send(p, '/second').done;
    expect(second.body.toString()).toBe('new session');
    const out = await first.done;
    expect(out.error).toBeUndefined();
    expect(out.body.toString()).toBe('finished after goaway');
    expect(service.sessions).toHaveLength(2);
  });

  it('a stream above GOAWAY’s last stream id is sent again, once, on a new session', async () => {
    const seen: string[] = [];
    const service = await h2Service((stream, headers) => {
      stream.resume();
      seen.push(String(headers[':path']));
      if (seen.length === 2) {
        // Two streams on the first session: keep the first, refuse the second.
        const session = stream.session!;
        session.goaway(constants.NGHTTP2_NO_ERROR, stream.id! - 2);
        setTimeout(() => {
          for (const s of firstStreams) {
            if (s.destroyed) continue;
            s.respond({ ':status': 200 });
            s.end('kept');
          }
        }, 50);
      } else if (seen.length > 2) {
        stream.respond({ ':status': 200 });
        stream.end('retried');
      }
      if (seen.length <= 2) firstStreams.push(stream);
    });
    const firstStreams: ServerHttp2Stream[] = [];
    const p = pool(service.url, { maxSessions: 1 });
    const a = send(p, '/a');
    const b = send(p, '/b');
    const [outA, outB] = await Promise.all([a.done, b.done]);
    expect(outA.body.toString()).toBe('kept');
    expect(outB.error).toBeUndefined();
    expect(outB.body.toString()).toBe('retried');
    expect(seen).toEqual(['/a', '/b', '/b']);
    expect(service.sessions).toHaveLength(2);
  });

  it('REFUSED_STREAM: a body-less request is retried once; one whose body was sent fails', async () => {
    let attempts = 0;
    const service = await h2Service((stream, headers) => {
      attempts++;
      if (headers[':path'] === '/always') {
        stream.close(constants.NGHTTP2_REFUSED_STREAM);
        return;
      }
      if (headers[':path'] === '/once' && attempts === 1) {
        stream.close(constants.NGHTTP2_REFUSED_STREAM);
        return;
      }
      if (headers[':path'] === '/with-body') {
        stream.once('data', () => stream.close(constants.NGHTTP2_REFUSED_STREAM));
        return;
      }
      stream.resume();
      stream.respond({ ':status': 200 });
      stream.end('ok');
    });
    const p = pool(service.url);
    const once = await send(p, '/once').done;
    expect(once.body.toString()).toBe('ok');
    expect(attempts).toBe(2);
    attempts = 0;
    const always = await send(p, '/always').done;
    expect(always.error?.reason).toBe('upstream_unavailable');
    expect(attempts).toBe(2); // one retry only
    attempts = 0;
    const body = new PassThrough();
    body.write('some bytes');
    const withBody = send(p, '/with-body', { body });
    const out = await withBody.done;
    expect(out.error?.reason).toBe('upstream_unavailable');
    expect(attempts).toBe(1);
    body.destroy();
  });

  it('close() sends GOAWAY, lets the stream in flight finish, and resolves when the sessions are gone', async () => {
    const service = await h2Service(slow(150));
    const p = new H2cPool({ url: service.url, timeoutMs: 2000, connectTimeoutMs: 1000, maxSessions: 2 });
    const inFlight = send(p, '/in-flight');
    await waitFor(() => service.sessions.length === 1);
    await sleep(30);
    await p.close();
    expect((await inFlight.done).body.toString()).toBe('/in-flight');
    expect(p.sessionCount).toBe(0);
    expect((await send(p, '/after').done).error?.code).toBe('ERR_POOL_CLOSED');
  });
});

describe('h2c pool: flow control end to end', () => {
  it('a client that stops reading stalls a service streaming 32 MiB; resuming delivers it intact', async () => {
    const total = 32 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let written = 0;
    let blocked = 0;
    const service = await h2Service((stream) => {
      stream.respond({ ':status': 200 });
      const pump = (): void => {
        while (written < total) {
          written += chunk.length;
          if (!stream.write(chunk)) {
            blocked++;
            stream.once('drain', pump);
            return;
          }
        }
        stream.end();
      };
      pump();
    });
    let reading = false;
    const hash = createHash('sha256');
    const sent = send(pool(service.url, { timeoutMs: 500 }), '/big', {
      idleTimeoutMs: 500,
      onChunk: (c) => hash.update(c),
      stopReading: () => !reading,
    });
    await waitFor(() => sent.received() > 0);
    await sleep(300);
    const stalledAt = written;
    await sleep(700); // past the idle timeout: waiting on our client is not the service's silence
    expect(written).toBe(stalledAt);
    expect(written).toBeLessThan(2 * 1024 * 1024);
    expect(sent.received()).toBeLessThan(1024 * 1024);
    expect(blocked).toBeGreaterThan(0);
    // Now read: all 32 MiB arrive, in order.
    reading = true;
    sent.call.resume();
    const out = await sent.done;
    expect(out.error).toBeUndefined();
    expect(sent.received()).toBe(total);
    expect(hash.digest('hex')).toBe(createHash('sha256').update(Buffer.alloc(total, 0x61)).digest('hex'));
  });

  it('a service that stops reading an upload stalls the client body; resuming completes it', async () => {
    let serverStream: ServerHttp2Stream | undefined;
    let serverReceived = 0;
    const service = await h2Service((stream) => {
      serverStream = stream; // not read until the test says so
      stream.on('end', () => {
        stream.respond({ ':status': 200 });
        stream.end(String(serverReceived));
      });
    });
    const total = 32 * 1024 * 1024;
    let pulled = 0;
    const source = new Readable({
      highWaterMark: 64 * 1024,
      read() {
        if (pulled >= total) {
          this.push(null);
          return;
        }
        pulled += 64 * 1024;
        this.push(Buffer.alloc(64 * 1024, 0x62));
      },
    });
    const sent = send(pool(service.url), '/upload', { body: source });
    await waitFor(() => serverStream !== undefined);
    await sleep(300);
    const stalledAt = pulled;
    await sleep(300);
    expect(pulled).toBe(stalledAt);
    expect(pulled).toBeLessThan(2 * 1024 * 1024);
    serverStream!.on('data', (c: Buffer) => (serverReceived += c.length));
    const out = await sent.done;
    expect(out.body.toString()).toBe(String(total));
    expect(pulled).toBe(total);
  });

  it('through a relay: a real HTTP/2 client that does not read holds the service back', async () => {
    const total = 32 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 0x63);
    let written = 0;
    const service = await h2Service((stream) => {
      stream.respond({ ':status': 200 });
      const pump = (): void => {
        while (written < total) {
          written += chunk.length;
          if (!stream.write(chunk)) return void stream.once('drain', pump);
        }
        stream.end();
      };
      pump();
    });
    const relay = await relayTo(pool(service.url));
    const client = connectHttp2(relay);
    cleanups.push(() => void client.destroy());
    const request = client.request({ ':path': '/big' });
    request.pause();
    let got = 0;
    await waitFor(() => written > 0);
    await sleep(400);
    const stalledAt = written;
    await sleep(300);
    expect(written).toBe(stalledAt);
    expect(written).toBeLessThan(4 * 1024 * 1024); // two windows (client, service) plus stream buffers
    request.on('data', (c: Buffer) => (got += c.length));
    request.resume();
    await new Promise((resolve) => request.on('end', resolve));
    expect(got).toBe(total);
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > until) throw new Error('condition not met in time');
    await sleep(5);
  }
}
