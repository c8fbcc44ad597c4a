// Our own HTTP/1.1 connection (src/http1/http1-connection.ts, response-writer.ts) attacked over
// real mTLS sockets through a real proxy: pipelined answers in order and whole, at most
// MAX_PIPELINED open, a queued answer's memory bounded by back-pressure to the service, the head
// and idle limits, the refusals it answers itself (417, 431 for too many fields), HTTP/1.0
// framing, bodyless answers, half-close and resets, and the desync a refused body could cause.
import { createHash } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { configYaml, createPki, DEFAULT_ROUTES, echoHandler, startProxy, startUpstream, type Issued, type Pki, type Upstream } from '../support/harness.ts';
import { rawSession, type RawSession } from '../support/raw-tls.ts';
import { MAX_PIPELINED } from '../../src/http1/http1-connection.ts';
import type { Instance } from '../../src/cli/instance.ts';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const until = async (test: () => boolean, ms = 5000): Promise<boolean> => {
  const deadline = Date.now() + ms;
  while (!test() && Date.now() < deadline) await sleep(10);
  return test();
};

interface Answer {
  status: number;
  head: string;
  headers: Map<string, string[]>;
  body: string;
  framing: 'length' | 'chunked' | 'none' | 'close';
}

/**
 * Splits a connection's bytes into its answers, framed strictly as a client would (RFC 9112 6.3):
 * `bodyless[i]` for an answer to HEAD (204 and 304 are bodyless by status). Returns the answers
 * whole so far and what is left; an answer without a length takes the rest when `closed`.
 */
function answers(text: string, bodyless: readonly boolean[] = [], closed = false): { list: Answer[]; rest: string } {
  const list: Answer[] = [];
  let at = 0;
  for (;;) {
    const end = text.indexOf('\r\n\r\n', at);
    if (end === -1) break;
    const head = text.slice(at, end);
    const lines = head.split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3}) /.exec(lines[0]!)?.[1] ?? NaN);
    if (status === 100) {
      at = end + 4;
      continue;
    }
    const headers = new Map<string, string[]>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).toLowerCase();
      headers.set(name, [...(headers.get(name) ?? []), line.slice(colon + 1).trim()]);
    }
    let bodyStart = end + 4;
    let body = '';
    let framing: Answer['framing'];
    if (bodyless[list.length] === true || status === 204 || status === 304) {
      framing = 'none';
    } else if (headers.get('transfer-encoding')?.join(',').toLowerCase() === 'chunked') {
      framing = 'chunked';
      let p = bodyStart;
      let complete = false;
      for (;;) {
        const lineEnd = text.indexOf('\r\n', p);
        if (lineEnd === -1) break;
        const size = parseInt(text.slice(p, lineEnd), 16);
        if (Number.isNaN(size)) throw new Error(`bad chunk size at ${p}: ${JSON.stringify(text.slice(p, p + 20))}`);
        if (size === 0) {
          if (text.slice(lineEnd + 2, lineEnd + 4) !== '\r\n') break;
          p = lineEnd + 4;
          complete = true;
          break;
        }
        if (text.length < lineEnd + 2 + size + 2) break;
        body += text.slice(lineEnd + 2, lineEnd + 2 + size);
        if (text.slice(lineEnd + 2 + size, lineEnd + 4 + size) !== '\r\n') throw new Error('chunk not followed by CRLF');
        p = lineEnd + 4 + size;
      }
      if (!complete) break;
      bodyStart = p;
    } else if (headers.has('content-length')) {
      framing = 'length';
      const length = Number(headers.get('content-length')![0]);
      if (text.length < bodyStart + length) break;
      body = text.slice(bodyStart, bodyStart + length);
      bodyStart += length;
    } else {
      framing = 'close';
      if (!closed) break;
      body = text.slice(bodyStart);
      bodyStart = text.length;
    }
    list.push({ status, head, headers, body, framing });
    at = bodyStart;
  }
  return { list, rest: text.slice(at) };
}

const get = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: localhost\r\n${extra}\r\n`;
const urlOf = (a: Answer) => (JSON.parse(a.body) as { url: string }).url;

/** The service's side of a big answer: `total` bytes (a multiple of 256 KiB) of `fill`, written as the proxy takes them ('drain'). */
function pumpAnswer(res: ServerResponse, total: number, fill: number): void {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
  const chunk = Buffer.alloc(256 * 1024, fill);
  let left = total;
  const pump = () => {
    while (left > 0) {
      left -= chunk.length;
      if (left === 0) return void res.end(chunk);
      if (!res.write(chunk)) return void res.once('drain', pump);
    }
  };
  pump();
}

/** An unsized answer (chunked to HTTP/1.1) whose end comes `ms` after its first part. */
function answerInTwoParts(res: ServerResponse, first: string, end: string, ms: number): void {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.write(first);
  setTimeout(() => res.end(end), ms);
}

/**
 * A slow reader on `socket` (paused 2 ms after every chunk, so the proxy's socket fills): what it
 * received, counted and not kept, its first KiB as text, when its last chunk came and when it
 * closed (Date.now()). `onData` runs on every chunk.
 */
function readSlowly(socket: TLSSocket, onData?: () => void): { received: () => number; head: () => string; lastAt: () => number; closed: Promise<number> } {
  socket.on('error', () => undefined);
  let received = 0;
  let head = '';
  let lastAt = NaN;
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
  socket.on('data', (c: Buffer) => {
    received += c.length;
    lastAt = Date.now();
    if (head.length < 1024) head += c.toString('latin1');
    onData?.();
    socket.pause();
    setTimeout(() => socket.resume(), 2);
  });
  return { received: () => received, head: () => head, lastAt: () => lastAt, closed };
}

describe('HTTP/1.1 connections read by our own parser', () => {
  let pki: Pki;
  let upstream: Upstream;
  let proxy: Instance;
  let client: Issued;
  let outsider: Issued;
  const sessions: RawSession[] = [];
  const open = async (who?: Issued) => {
    const session = await rawSession(proxy.proxyPort, pki.ca.bundlePem, who ?? client);
    sessions.push(session);
    return session;
  };

  beforeAll(async () => {
    pki = await createPki();
    upstream = await startUpstream();
    const yaml = configYaml(pki, upstream.url, `${DEFAULT_ROUTES}limits: { headersTimeout: 1s, idleTimeout: 2s }\n`).replace('timeout: 2s,', 'timeout: 10s,');
    proxy = await startProxy(pki, yaml);
    client = await pki.ca.svid('/ns/prod/sa/web');
    outsider = await pki.ca.svid('/ns/dev/sa/scraper');
  });
  afterEach(() => {
    upstream.handler = echoHandler;
    for (const s of sessions.splice(0)) s.socket.destroy();
  });
  afterAll(async () => {
    await proxy.close();
    await upstream.close();
    pki.cleanup();
  });

  describe('pipelining', () => {
    it(`answers 20 requests sent in one write in order, each whole, with never more than ${MAX_PIPELINED} open at the service`, async () => {
      // The service holds what it gets until MAX_PIPELINED are open at once (or 1.5 s pass), then
      // answers them last first: only the proxy's ordering can put them back in request order.
      let inFlight = 0;
      let most = 0;
      let held: (() => void)[] = [];
      let fallback: NodeJS.Timeout | undefined;
      const release = () => {
        clearTimeout(fallback);
        const batch = held.reverse();
        held = [];
        batch.forEach((answer, i) => setTimeout(answer, i * 5));
      };
      upstream.handler = (req, res) => {
        inFlight++;
        most = Math.max(most, inFlight);
        req.resume();
        held.push(() => {
          inFlight--;
          // Half the answers chunked, half with a length: both framings next to each other.
          const n = Number(req.url!.split('/').pop());
          const body = JSON.stringify({ url: req.url, pad: 'x'.repeat(n * 97) });
          res.writeHead(200, n % 2 === 0 ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : { 'content-type': 'application/json' });
          if (n % 2 === 0) res.end(body);
          else {
            res.write(body.slice(0, 10));
            res.end(body.slice(10));
          }
        });
        clearTimeout(fallback);
        if (held.length === MAX_PIPELINED) release();
        else fallback = setTimeout(release, 1500);
      };
      const session = await open();
      const urls = Array.from({ length: 20 }, (_, i) => `/orders/${i + 1}`);
      session.socket.write(urls.map((u) => get(u)).join(''));
      expect(await until(() => answers(session.text()).list.length === 20, 10_000)).toBe(true);
      const { list, rest } = answers(session.text());
      expect(rest).toBe('');
      expect(list.map(urlOf)).toEqual(urls);
      for (const [i, a] of list.entries()) {
        expect(a.status).toBe(200);
        expect(a.framing).toBe((i + 1) % 2 === 0 ? 'length' : 'chunked');
        expect((JSON.parse(a.body) as { pad: string }).pad).toHaveLength((i + 1) * 97);
      }
      expect(most).toBe(MAX_PIPELINED);
    });

    it(`reads the next request as soon as one of ${MAX_PIPELINED} open is answered, not once all are`, async () => {
      // The service answers /orders/1 at once and holds the rest: the 17th must reach it while
      // 15 of the first 16 are still open.
      const held: (() => void)[] = [];
      upstream.handler = (req, res) => {
        req.resume();
        if (req.url === '/orders/1') res.end(JSON.stringify({ url: req.url }));
        else held.push(() => res.end(JSON.stringify({ url: req.url })));
      };
      const before = upstream.received.length;
      const session = await open();
      session.socket.write(Array.from({ length: MAX_PIPELINED + 1 }, (_, i) => get(`/orders/${i + 1}`)).join(''));
      expect(await until(() => upstream.received.length - before === MAX_PIPELINED + 1, 5000)).toBe(true);
      expect(held).toHaveLength(MAX_PIPELINED);
      for (const answer of held) answer();
      expect(await until(() => answers(session.text()).list.length === MAX_PIPELINED + 1, 5000)).toBe(true);
      expect(answers(session.text()).list.map(urlOf)).toEqual(Array.from({ length: MAX_PIPELINED + 1 }, (_, i) => `/orders/${i + 1}`));
    });

    it('random pipelines (GET, sized and chunked POSTs) split at random points: the service gets exactly those requests and bodies, the client their answers in order', async () => {
      upstream.handler = (req, res) => {
        const hash = createHash('sha256');
        let bytes = 0;
        req.on('data', (c: Buffer) => {
          bytes += c.length;
          hash.update(c);
        });
        req.on('end', () => {
          const body = JSON.stringify({ method: req.method, url: req.url, bytes, sha: hash.digest('hex').slice(0, 16) });
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
          res.end(body);
        });
      };
      const request = fc.oneof(
        fc.constant({ kind: 'get' as const, body: '' }),
        fc.string({ maxLength: 3000 }).map((body) => ({ kind: 'sized' as const, body })),
        fc.array(fc.string({ minLength: 1, maxLength: 700 }), { maxLength: 4 }).map((chunks) => ({ kind: 'chunked' as const, body: chunks.join(''), chunks })),
      );
      await fc.assert(
        fc.asyncProperty(fc.array(request, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 8 }), async (requests, cuts) => {
          const expected = requests.map((r, i) => {
            const data = Buffer.from(r.body, 'latin1');
            return { method: r.kind === 'get' ? 'GET' : 'POST', url: r.kind === 'get' ? `/orders/${i}` : `/upload?n=${i}`, bytes: data.length, sha: createHash('sha256').update(data).digest('hex').slice(0, 16) };
          });
          const wire = requests
            .map((r, i) => {
              if (r.kind === 'get') return get(`/orders/${i}`);
              if (r.kind === 'sized') return `POST /upload?n=${i} HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${r.body.length}\r\n\r\n${r.body}`;
              return `POST /upload?n=${i} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n${r.chunks.map((c) => `${c.length.toString(16)}\r\n${c}\r\n`).join('')}0\r\n\r\n`;
            })
            .join('');
          const bytes = Buffer.from(wire, 'latin1');
          const at = [...new Set(cuts.map((c) => c % bytes.length))].sort((a, b) => a - b);
          const session = await open();
          let from = 0;
          for (const cut of [...at, bytes.length]) {
            session.socket.write(bytes.subarray(from, cut));
            from = cut;
            await sleep(1);
          }
          expect(await until(() => answers(session.text()).list.length === requests.length)).toBe(true);
          const { list, rest } = answers(session.text());
          expect(rest).toBe('');
          expect(list.map((a) => JSON.parse(a.body) as unknown)).toEqual(expected);
          session.socket.destroy();
        }),
        { numRuns: 25 },
      );
    });

    it(`holds what comes behind ${MAX_PIPELINED} open requests in TCP, not memory; then answers them all and closes on the garbage`, async () => {
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      upstream.handler = (req, res) => void held.then(() => echoHandler(req, res));
      const before = upstream.received.length;
      const session = await open();
      try {
        session.socket.write(Array.from({ length: MAX_PIPELINED }, (_, i) => get(`/orders/${i}`)).join(''));
        expect(await until(() => upstream.received.length - before === MAX_PIPELINED)).toBe(true);
        // Then a flood of bytes no request is made of, written as fast as the socket takes them,
        // until it takes no more for 500 ms (or 64 MiB have gone: the proxy holds them all).
        const chunk = Buffer.alloc(64 * 1024, 0x58);
        let taken = 0;
        for (;;) {
          if (taken >= 64 * 1024 * 1024) break;
          if (session.socket.write(chunk)) {
            taken += chunk.length;
            continue;
          }
          const drained = await Promise.race([new Promise<boolean>((resolve) => session.socket.once('drain', () => resolve(true))), sleep(500).then(() => false)]);
          if (!drained) break;
          taken += chunk.length;
        }
        // The proxy holds at most its reader's bound; the rest of what it took is in kernel buffers.
        expect(taken).toBeLessThan(16 * 1024 * 1024);
        release();
        expect(await session.closedWithin(5000)).toBe(true);
        const { list } = answers(session.text(), [], true);
        expect(list.slice(0, MAX_PIPELINED).map(urlOf)).toEqual(Array.from({ length: MAX_PIPELINED }, (_, i) => `/orders/${i}`));
        // A request line of 4 MiB of X, past limits.maxHeaderBytes before any line end, read as
        // soon as the first answer freed a place: refused while the other 15 were open, so they
        // finish and the connection closes, with no answer of its own after theirs.
        expect(list).toHaveLength(MAX_PIPELINED);
      } finally {
        release();
      }
    });

    it('a 100 Continue for a pipelined request waits for the answer before it: never inside it', async () => {
      upstream.handler = (req, res) => {
        if (req.url === '/orders/slow') {
          req.resume();
          answerInTwoParts(res, 'slow-1 ', 'slow-2', 300);
        } else {
          echoHandler(req, res);
        }
      };
      const session = await open();
      session.socket.write(`${get('/orders/slow')}POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n`);
      expect(await until(() => session.text().includes('100 Continue'))).toBe(true);
      const text = session.text();
      // The first answer ended (chunked, last chunk) before the 100 Continue.
      expect(text.indexOf('HTTP/1.1 100 Continue\r\n\r\n')).toBe(text.indexOf('slow-2\r\n0\r\n\r\n') + 'slow-2\r\n0\r\n\r\n'.length);
      session.socket.write('hello');
      expect(await until(() => answers(session.text()).list.length === 2)).toBe(true);
      const { list, rest } = answers(session.text());
      expect(rest).toBe('');
      expect(list[0]!.body).toBe('slow-1 slow-2');
      expect(JSON.parse(list[1]!.body)).toMatchObject({ url: '/upload', bytes: 5 });
    });

    it('holds a fast second answer until the slow first has gone out whole: nothing of the second before it', async () => {
      const second = 'B'.repeat(200_000);
      upstream.handler = (req, res) => {
        req.resume();
        if (req.url === '/orders/slow') {
          answerInTwoParts(res, 'first-part ', 'first-end', 400);
        } else {
          res.writeHead(200, { 'content-type': 'text/plain', 'content-length': second.length });
          res.end(second);
        }
      };
      const session = await open();
      session.socket.write(get('/orders/slow') + get('/orders/fast'));
      await until(() => session.text().includes('first-part'));
      await sleep(200);
      // The first answer is half out; the second, long since whole at the proxy, is not on the wire.
      expect(session.text()).not.toContain('BBBB');
      expect(session.text().match(/HTTP\/1\.1 /g)).toHaveLength(1);
      expect(await until(() => answers(session.text()).list.length === 2)).toBe(true);
      const { list, rest } = answers(session.text());
      expect(rest).toBe('');
      expect(list[0]!.body).toBe('first-part first-end');
      expect(list[1]!.body).toBe(second);
    });

    it("bounds a queued answer's memory: a 48 MiB answer behind a slow one back-pressures the service instead of being held", async () => {
      const CHUNK = 64 * 1024;
      const TOTAL = 48 * 1024 * 1024;
      let written = 0;
      let releaseSlow!: () => void;
      const slowHeld = new Promise<void>((resolve) => (releaseSlow = resolve));
      upstream.handler = (req: IncomingMessage, res: ServerResponse) => {
        req.resume();
        if (req.url === '/orders/slow') {
          void slowHeld.then(() => res.end('slow-done'));
          return;
        }
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': TOTAL });
        const chunk = Buffer.alloc(CHUNK, 0x5a);
        const pump = () => {
          while (written < TOTAL) {
            written += CHUNK;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        pump();
      };
      // Our own socket: bytes counted, not kept as a 48 MiB string.
      const socket = tlsConnect({ port: proxy.proxyPort, host: '127.0.0.1', servername: 'localhost', ca: pki.ca.bundlePem, cert: client.certPem, key: client.keyPem });
      try {
        await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
        let received = 0;
        let head = '';
        socket.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (head.length < 4096) head += chunk.toString('latin1');
        });
        const base = process.memoryUsage().arrayBuffers;
        socket.write(get('/orders/slow') + get('/orders/big'));
        // Wait until the service is stalled: nothing more written for 300 ms.
        let last = -1;
        for (let i = 0; i < 100 && written !== last; i++) {
          last = written;
          await sleep(300);
        }
        const grown = process.memoryUsage().arrayBuffers - base;
        expect(written).toBeGreaterThan(0);
        // Kernel socket buffers on loopback can take a few MiB; the proxy itself holds 64 KiB.
        expect(written).toBeLessThan(16 * 1024 * 1024);
        expect(grown).toBeLessThan(16 * 1024 * 1024);
        expect(received).toBe(0);
        releaseSlow();
        const headLength = await new Promise<number>((resolve) => {
          const check = () => {
            const split = head.indexOf('\r\n\r\n', head.indexOf('slow-done'));
            if (split !== -1 && received >= split + 4 + TOTAL) resolve(split + 4);
            else setTimeout(check, 20);
          };
          check();
        });
        expect(head).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nslow-done/);
        expect(received).toBe(headLength + TOTAL);
        expect(written).toBe(TOTAL);
      } finally {
        releaseSlow();
        socket.destroy();
      }
    });

    it('never reads a refused request body as a request: a 403 with a body holding a request, pipelined with another', async () => {
      const smuggled = get('/orders/smuggled', 'X-Forwarded-Client-Cert: URI=spiffe://example.org/ns/prod/sa/admin\r\n');
      for (const padding of [0, 300_000]) {
        const before = upstream.received.length;
        const body = smuggled + 'p'.repeat(padding) + smuggled;
        const session = await open();
        session.socket.write(`POST /admin HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${body.length}\r\n\r\n${body}${get('/orders/next')}`);
        // Either the next request is answered, or the connection is closed: never a hang, never the body as requests.
        await until(() => answers(session.text()).list.length === 2 || session.socket.destroyed, 6000);
        const closed = session.socket.destroyed;
        const { list } = answers(session.text(), [], closed);
        expect(list[0]?.status, `padding ${padding}`).toBe(403);
        // As Node's server did: the unread body is read and dropped, then the next request answered
        // (before, a body past the stream's buffer paused the reader for good: no answer, no close).
        expect(list.length, `padding ${padding}: ${JSON.stringify(session.text().slice(0, 300))}`).toBe(2);
        expect(urlOf(list[1]!)).toBe('/orders/next');
        expect(answers(session.text()).rest).toBe('');
        await sleep(50);
        expect(upstream.received.slice(before).map((r) => r.url)).not.toContain('/orders/smuggled');
      }
    });

    it('an answer cut by the service in the middle of a pipeline: the ones before it whole, nothing of the later ones after the cut', async () => {
      upstream.handler = (req, res) => {
        if (req.url === '/orders/2') {
          req.resume();
          res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 100 });
          res.write('half-of-two');
          setTimeout(() => res.destroy(), 100);
        } else {
          setTimeout(() => echoHandler(req, res), req.url === '/orders/1' ? 150 : 0);
        }
      };
      const session = await open();
      session.socket.write(get('/orders/1') + get('/orders/2') + get('/orders/3'));
      expect(await session.closedWithin(3000)).toBe(true);
      const { list, rest } = answers(session.text());
      expect(list.map(urlOf)).toEqual(['/orders/1']);
      // Then the close: nothing of the cut second answer, nothing of the third (before, the cut of
      // the queued second answer closed the connection at once and the whole first was lost).
      expect(rest).toBe('');
    });

    it('the same with a 16 MiB first answer to a slow reader: all of it arrives before the cut', async () => {
      const TOTAL = 16 * 1024 * 1024;
      upstream.handler = (req, res) => {
        req.resume();
        if (req.url === '/orders/2') {
          res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 100 });
          res.write('half-of-two');
          setTimeout(() => res.destroy(), 50);
          return;
        }
        pumpAnswer(res, TOTAL, 0x31);
      };
      const socket = tlsConnect({ port: proxy.proxyPort, host: '127.0.0.1', servername: 'localhost', ca: pki.ca.bundlePem, cert: client.certPem, key: client.keyPem });
      try {
        await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
        // A slow reader: the proxy's socket is full when the first answer's last bytes come.
        const reader = readSlowly(socket);
        socket.write(get('/orders/1') + get('/orders/2'));
        const closedAt = await Promise.race([reader.closed, sleep(15_000).then(() => Infinity)]);
        const head = reader.head();
        expect(head).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
        expect(reader.received() - (head.indexOf('\r\n\r\n') + 4)).toBe(TOTAL);
        // Then the cut, right after the last byte (not a connection left open).
        expect(closedAt - reader.lastAt()).toBeLessThan(2000);
      } finally {
        socket.destroy();
      }
    });

    it('never reads a body as a request when the service answers before reading it', async () => {
      const smuggled = get('/orders/smuggled');
      upstream.handler = (req, res) => {
        if (req.url === '/upload') {
          res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 5 });
          res.end('early');
        } else {
          echoHandler(req, res);
        }
      };
      const before = upstream.received.length;
      const body = smuggled + 'p'.repeat(300_000) + smuggled;
      const session = await open();
      session.socket.write(`POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${body.length}\r\n\r\n${body}${get('/orders/next')}`);
      await until(() => answers(session.text()).list.length === 2 || session.socket.destroyed, 6000);
      const closed = session.socket.destroyed;
      const { list } = answers(session.text(), [], closed);
      expect(list[0]?.body).toBe('early');
      expect(list.length === 2 || closed, 'neither answered nor closed').toBe(true);
      if (list.length === 2) expect(urlOf(list[1]!)).toBe('/orders/next');
      await sleep(50);
      expect(upstream.received.slice(before).map((r) => r.url)).not.toContain('/orders/smuggled');
    });

    it('cuts the connection for an upgrade pipelined behind an open request: no 101, the service never sees it', async () => {
      const upgrades: string[] = [];
      const onUpgrade = (req: IncomingMessage, socket: import('node:stream').Duplex) => {
        upgrades.push(req.url ?? '');
        socket.destroy();
      };
      upstream.server.on('upgrade', onUpgrade);
      upstream.handler = (req, res) => {
        req.resume();
        setTimeout(() => res.end('slow'), 300);
      };
      try {
        const session = await open();
        session.socket.write(`${get('/orders/slow')}GET /orders/ws HTTP/1.1\r\nHost: localhost\r\nConnection: upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
        expect(await session.closedWithin(3000)).toBe(true);
        expect(session.text()).not.toContain(' 101 ');
        expect(upgrades).toEqual([]);
      } finally {
        upstream.server.off('upgrade', onUpgrade);
      }
    });

    it('never reads a body as a request when the peer is refused (peer_not_allowed) either', async () => {
      const before = upstream.received.length;
      const body = get('/orders/smuggled');
      const session = await open(outsider);
      session.socket.write(`POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${body.length}\r\n\r\n${body}${get('/orders/next')}`);
      await until(() => answers(session.text()).list.length === 2 || session.socket.destroyed);
      const { list } = answers(session.text(), [], session.socket.destroyed);
      expect(list.map((a) => a.status)).toEqual(list.length === 2 ? [403, 403] : [403]);
      expect(upstream.received.length).toBe(before);
    });
  });

  describe('head and idle limits (headersTimeout 1 s, idleTimeout 2 s)', () => {
    it('answers 400 and closes a connection that sends no head within headersTimeout of the handshake', async () => {
      const session = await open();
      const started = Date.now();
      const closedAt = await Promise.race([session.closed, sleep(4000).then(() => Infinity)]);
      expect(closedAt - started).toBeGreaterThanOrEqual(900);
      expect(closedAt - started).toBeLessThan(2000);
      const { list } = answers(session.text());
      expect(list.map((a) => [a.status, (JSON.parse(a.body) as { reason: string }).reason])).toEqual([[400, 'bad_request']]);
      expect(list[0]!.headers.get('connection')).toEqual(['close']);
    });

    it('answers 400 and closes when a later head stays half-sent past headersTimeout', async () => {
      const session = await open();
      session.socket.write(get('/orders/1'));
      expect(await until(() => answers(session.text()).list.length === 1)).toBe(true);
      session.socket.write('GET /orders/2 HTTP/1.1\r\nHost: loc');
      const started = Date.now();
      const closedAt = await Promise.race([session.closed, sleep(4000).then(() => Infinity)]);
      expect(closedAt - started).toBeGreaterThanOrEqual(900);
      expect(closedAt - started).toBeLessThan(2000);
      const { list } = answers(session.text());
      expect(list.map((a) => a.status)).toEqual([200, 400]);
    });

    it('closes an idle keep-alive connection after idleTimeout, silently, and not at the head limit', async () => {
      const session = await open();
      session.socket.write(get('/orders/1'));
      expect(await until(() => answers(session.text()).list.length === 1)).toBe(true);
      const answered = Date.now();
      expect(answers(session.text()).list[0]!.headers.get('keep-alive')).toEqual(['timeout=2']);
      const closedAt = await Promise.race([session.closed, sleep(5000).then(() => Infinity)]);
      expect(closedAt - answered).toBeGreaterThanOrEqual(1800);
      expect(closedAt - answered).toBeLessThan(3200);
      expect(answers(session.text()).list).toHaveLength(1);
      expect(answers(session.text()).rest).toBe('');
    });

    it('closes an idle connection fed only empty lines at idleTimeout: CRLFs between requests hold nothing open', async () => {
      const session = await open();
      session.socket.write(get('/orders/1'));
      expect(await until(() => answers(session.text()).list.length === 1)).toBe(true);
      const answered = Date.now();
      const feed = setInterval(() => session.socket.write('\r\n'), 300);
      try {
        // Before, every CRLF restarted the idle clock (as Node's socket timeout did): open forever.
        const closedAt = await Promise.race([session.closed, sleep(5000).then(() => Infinity)]);
        expect(closedAt - answered).toBeGreaterThanOrEqual(1800);
        expect(closedAt - answered).toBeLessThan(3200);
        expect(answers(session.text()).list).toHaveLength(1);
      } finally {
        clearInterval(feed);
      }
    });

    it('a refused request whose dropped body takes longer than idleTimeout: the request after it is still answered', async () => {
      const session = await open();
      session.socket.write('POST /admin HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n\r\n');
      expect(await until(() => answers(session.text()).list.length === 1)).toBe(true);
      for (const c of 'abcd') {
        await sleep(700);
        session.socket.write(c);
      }
      await sleep(150);
      session.socket.write(get('/orders/after'));
      expect(await until(() => answers(session.text()).list.length === 2, 3000)).toBe(true);
      expect(answers(session.text()).list.map((a) => a.status)).toEqual([403, 200]);
      expect(urlOf(answers(session.text()).list[1]!)).toBe('/orders/after');
    });

    it('keeps a connection whose request is open past both limits: a slow answer and a slow body are not cut', async () => {
      upstream.handler = (req, res) => {
        let bytes = 0;
        req.on('data', (c: Buffer) => (bytes += c.length));
        req.on('end', () => setTimeout(() => res.end(JSON.stringify({ url: req.url, bytes })), req.url === '/orders/slow' ? 2500 : 0));
      };
      const session = await open();
      session.socket.write(get('/orders/slow'));
      expect(await until(() => answers(session.text()).list.length === 1, 5000)).toBe(true);
      session.socket.write('POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\n');
      for (const c of 'hello') {
        await sleep(600);
        session.socket.write(c);
      }
      expect(await until(() => answers(session.text()).list.length === 2, 3000)).toBe(true);
      const { list } = answers(session.text());
      expect(list.map((a) => [a.status, a.body])).toEqual([
        [200, JSON.stringify({ url: '/orders/slow', bytes: 0 })],
        [200, JSON.stringify({ url: '/upload', bytes: 5 })],
      ]);
      expect(session.socket.destroyed).toBe(false);
    });
  });

  describe('refusals the connection answers itself', () => {
    it('answers Expect other than 100-continue with 417 in the SPEC format and closes; nothing reaches the service', async () => {
      const before = upstream.received.length;
      const session = await open();
      session.socket.write(`POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nExpect: something-else\r\n\r\nabc${get('/orders/after')}`);
      expect(await session.closedWithin(3000)).toBe(true);
      const { list, rest } = answers(session.text());
      expect(rest).toBe('');
      expect(list).toHaveLength(1);
      expect(list[0]!.status).toBe(417);
      expect(list[0]!.headers.get('connection')).toEqual(['close']);
      expect(list[0]!.headers.get('content-type')).toEqual(['application/json']);
      const body = JSON.parse(list[0]!.body) as Record<string, string>;
      expect(body).toEqual({ error: 'the request has an Expect other than 100-continue', reason: 'bad_request', request_id: expect.stringMatching(/^[0-9a-f-]{36}$/) });
      expect(list[0]!.headers.get('x-request-id')).toEqual([body.request_id]);
      await sleep(50);
      expect(upstream.received.length).toBe(before);
    });

    it('refuses a head of 2001 fields with 431 and takes 2000 and 1999 (they reach the decision: no_route)', async () => {
      // A path no route matches: the proxy's own answer shows the head was taken (Node's server,
      // as the service, refuses a thousand short fields itself).
      const head = (fields: number) => `GET /admin HTTP/1.1\r\nHost: localhost\r\n${'a:b\r\n'.repeat(fields - 1)}\r\n`;
      const reasonOf = (a: Answer | undefined) => [a?.status, (JSON.parse(a!.body) as { reason: string }).reason];
      const refused = await open();
      refused.socket.write(head(2001));
      expect(await refused.closedWithin(3000)).toBe(true);
      expect(reasonOf(answers(refused.text()).list[0])).toEqual([431, 'bad_request']);
      for (const count of [2000, 1999]) {
        const taken = await open();
        taken.socket.write(head(count));
        expect(await until(() => answers(taken.text()).list.length === 1)).toBe(true);
        expect(reasonOf(answers(taken.text()).list[0]), `${count} fields`).toEqual([403, 'no_route']);
      }
    });
  });

  describe('framing of answers', () => {
    it('HTTP/1.0 without keep-alive: one answer, Connection: close, then the close; an answer of no length ends with the connection, never chunked', async () => {
      upstream.handler = (req, res) => {
        req.resume();
        if (req.url === '/orders/unsized') {
          answerInTwoParts(res, 'part-1 ', 'part-2', 50);
        } else {
          echoHandler(req, res);
        }
      };
      const sized = await open();
      sized.socket.write(`GET /orders/10 HTTP/1.0\r\nHost: localhost\r\n\r\n${get('/orders/never')}`);
      expect(await sized.closedWithin(3000)).toBe(true);
      const one = answers(sized.text(), [], true);
      expect(one.list).toHaveLength(1);
      expect(urlOf(one.list[0]!)).toBe('/orders/10');
      expect(one.list[0]!.headers.get('connection')).toEqual(['close']);
      expect(one.rest).toBe('');

      const unsized = await open();
      unsized.socket.write('GET /orders/unsized HTTP/1.0\r\nHost: localhost\r\n\r\n');
      expect(await unsized.closedWithin(3000)).toBe(true);
      const [answer] = answers(unsized.text(), [], true).list;
      expect(answer!.framing).toBe('close');
      expect(answer!.headers.has('transfer-encoding')).toBe(false);
      expect(answer!.body).toBe('part-1 part-2');

      // HTTP/1.0 asking for keep-alive, with an unsized answer: it must still be ended by the close.
      const keepAlive = await open();
      keepAlive.socket.write('GET /orders/unsized HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n');
      expect(await keepAlive.closedWithin(3000)).toBe(true);
      const [kept] = answers(keepAlive.text(), [], true).list;
      expect([kept!.framing, kept!.body, kept!.headers.get('connection')]).toEqual(['close', 'part-1 part-2', ['close']]);
    });

    it('HTTP/1.0 with keep-alive and a sized answer stays open for the next request', async () => {
      upstream.handler = (req, res) => {
        req.resume();
        const body = JSON.stringify({ url: req.url });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      };
      const session = await open();
      session.socket.write('GET /orders/a HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n');
      expect(await until(() => answers(session.text()).list.length === 1)).toBe(true);
      expect(answers(session.text()).list[0]!.headers.get('connection')).toEqual(['keep-alive']);
      session.socket.write('GET /orders/b HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n');
      expect(await until(() => answers(session.text()).list.length === 2)).toBe(true);
      expect(answers(session.text()).list.map(urlOf)).toEqual(['/orders/a', '/orders/b']);
    });

    it('HEAD, 204 and 304 answers carry no body bytes, chunked or not; the request after them is answered on the same connection', async () => {
      upstream.handler = (req, res) => {
        req.resume();
        if (req.url === '/orders/head-sized') {
          res.writeHead(200, { 'content-length': 11, 'content-type': 'text/plain' });
          res.end(req.method === 'HEAD' ? undefined : 'hello world');
        } else if (req.url === '/orders/head-unsized') {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end(req.method === 'HEAD' ? undefined : 'hello world');
        } else if (req.url === '/orders/204') {
          res.writeHead(204, { 'x-kind': 'no-content' });
          res.end();
        } else if (req.url === '/orders/304') {
          res.writeHead(304, { etag: '"v1"' });
          res.end();
        } else {
          echoHandler(req, res);
        }
      };
      const session = await open();
      session.socket.write(
        `HEAD /orders/head-sized HTTP/1.1\r\nHost: localhost\r\n\r\nHEAD /orders/head-unsized HTTP/1.1\r\nHost: localhost\r\n\r\n${get('/orders/204')}${get('/orders/304', 'If-None-Match: "v1"\r\n')}${get('/orders/after')}`,
      );
      const bodyless = [true, true, false, false, false];
      expect(await until(() => answers(session.text(), bodyless).list.length === 5)).toBe(true);
      const { list, rest } = answers(session.text(), bodyless);
      expect(rest).toBe('');
      expect(list.map((a) => a.status)).toEqual([200, 200, 204, 304, 200]);
      expect(list[0]!.headers.get('content-length')).toEqual(['11']);
      for (const a of list.slice(0, 4)) expect(a.headers.has('transfer-encoding')).toBe(false);
      expect(urlOf(list[4]!)).toBe('/orders/after');
    });
  });

  describe('clients that go away', () => {
    it('a half-close (FIN) after a complete request: the request is abandoned or answered, the connection closes, the proxy serves on', async () => {
      const closedAt = Promise.withResolvers<boolean>();
      upstream.handler = (req, res) => {
        req.resume();
        res.on('close', () => closedAt.resolve(res.writableFinished));
        setTimeout(() => {
          if (!res.destroyed) res.end('late');
        }, 500);
      };
      const session = await open();
      session.socket.end(get('/orders/half'));
      expect(await session.closedWithin(3000)).toBe(true);
      // Node's server (httpAllowHalfOpen off) abandons it: the service's answer is cut or unread.
      const finished = await Promise.race([closedAt.promise, sleep(3000).then(() => 'none' as const)]);
      expect(finished).not.toBe('none');
      expect(answers(session.text()).rest).toBe('');
      upstream.handler = echoHandler;
      const next = await open();
      next.socket.write(get('/orders/next'));
      expect(await until(() => answers(next.text()).list.length === 1)).toBe(true);
      expect(urlOf(answers(next.text()).list[0]!)).toBe('/orders/next');
    });

    it('a reset in the middle of a body aborts the service call, and the proxy serves others', async () => {
      const outcome = Promise.withResolvers<{ bytes: number; complete: boolean }>();
      let bytes = 0;
      upstream.handler = (req) => {
        req.on('data', (c: Buffer) => (bytes += c.length));
        req.on('close', () => outcome.resolve({ bytes, complete: req.complete }));
      };
      const tcp = netConnect({ port: proxy.proxyPort, host: '127.0.0.1' });
      const socket = tlsConnect({ socket: tcp, servername: 'localhost', ca: pki.ca.bundlePem, cert: client.certPem, key: client.keyPem });
      socket.on('error', () => undefined);
      tcp.on('error', () => undefined);
      await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
      socket.write('POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1048576\r\n\r\n');
      socket.write(Buffer.alloc(100_000, 0x61));
      // The body is flowing to the service when the client resets (or the reset proves nothing).
      expect(await until(() => bytes > 0)).toBe(true);
      tcp.resetAndDestroy();
      const result = await Promise.race([outcome.promise, sleep(3000).then(() => undefined)]);
      expect(result).toBeDefined();
      expect(result!.complete).toBe(false);
      expect(result!.bytes).toBeLessThan(1048576);
      upstream.handler = echoHandler;
      const next = await open();
      next.socket.write(get('/orders/next'));
      expect(await until(() => answers(next.text()).list.length === 1)).toBe(true);
      expect(urlOf(answers(next.text()).list[0]!)).toBe('/orders/next');
    });
  });
});

describe('HTTP/1.1 connections at a graceful stop', () => {
  it('an answer that ended during the drain reaches a slow reader whole before its connection is closed', async () => {
    const pki = await createPki();
    const TOTAL = 16 * 1024 * 1024;
    const upstream = await startUpstream((req, res) => {
      req.resume();
      pumpAnswer(res, TOTAL, 0x32);
    });
    const proxy = await startProxy(pki, configYaml(pki, upstream.url, DEFAULT_ROUTES));
    const client = await pki.ca.svid('/ns/prod/sa/web');
    const socket = tlsConnect({ port: proxy.proxyPort, host: '127.0.0.1', servername: 'localhost', ca: pki.ca.bundlePem, cert: client.certPem, key: client.keyPem });
    try {
      await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
      let stopping: Promise<void> | undefined;
      // The stop begins once the answer is on its way; the reader stays slow throughout.
      const reader = readSlowly(socket, () => (stopping ??= proxy.close()));
      socket.write(get('/orders/big'));
      const closedAt = await Promise.race([reader.closed, sleep(15_000).then(() => Infinity)]);
      await stopping;
      const head = reader.head();
      expect(head).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(reader.received() - (head.indexOf('\r\n\r\n') + 4)).toBe(TOTAL);
      // The drain closed it once the answer was out, not limits.shutdownTimeout (10 s) forcing it.
      expect(closedAt - reader.lastAt()).toBeLessThan(2000);
    } finally {
      socket.destroy();
      await upstream.close();
      pki.cleanup();
    }
  });
});
