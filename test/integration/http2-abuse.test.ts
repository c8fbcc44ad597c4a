// HTTP/2 abuse (SPEC "Protocols and streams", issue 11 item 6): every flood and malformed frame
// the 2023-24 advisories name, sent by a raw HTTP/2 peer over real mTLS against Portcullis in its
// own process (so its memory is its own), each answered with the protocol's stream or connection
// error, counted in portcullis_bad_requests_total, while a normal client on another connection
// keeps getting its 200 within a second.
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { configYaml, createPki, type Issued, type Pki, startUpstream, type Upstream } from '../support/harness.ts';
import { startChildProxy, memoryOf, type ChildProxy } from '../support/child-proxy.ts';
import { sample, sleep } from './decision-support.ts';
import { ERROR, FRAME, frames, getFields, hpack, rawH2, type RawH2, type Received } from '../support/h2-frames.ts';

const CONFIG = `routes:
  - { name: orders, match: { path: "/orders/**" }, privileged: false }
  - { name: big, match: { path: /big }, privileged: false }
  - { name: slow, match: { path: /slow }, privileged: false }
  - { name: grpc, match: { path: "/demo.v1.Demo/**" }, privileged: false }
limits: { maxConcurrentStreams: 4, headersTimeout: 1s, idleTimeout: 3s }
`;
const POST = (path = '/orders/1'): Array<readonly [string, string]> => [[':method', 'POST'], [':scheme', 'https'], [':authority', 'localhost'], [':path', path]];

describe('HTTP/2 abuse: floods and malformed frames are refused, counted, and everyone else is served', () => {
  let pki: Pki;
  let upstream: Upstream;
  let proxy: ChildProxy;
  let client: Issued;
  /** Bytes the /big service route has written (it streams up to 128 MiB, as fast as it may). */
  let bigWritten = 0;

  beforeAll(async () => {
    pki = await createPki();
    upstream = await startUpstream((req, res) => {
      if (req.url === '/big') {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const chunk = Buffer.alloc(64 * 1024, 120);
        const pump = (): void => {
          while (bigWritten < 128 * 1024 * 1024 && !res.destroyed) {
            bigWritten += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        pump();
        return;
      }
      if (req.url === '/slow') {
        // An answer that starts, then is silent for longer than the session's idle limit.
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('a');
        setTimeout(() => res.end('b'), 3500);
        return;
      }
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
      });
    });
    client = await pki.ca.svid('/ns/prod/sa/web');
    const yaml = configYaml(pki, upstream.url, CONFIG).replace('timeout: 2s', 'timeout: 10s');
    proxy = await startChildProxy(pki.write('abuse.yaml', yaml));
  });
  afterAll(async () => {
    await proxy.stop();
    await upstream.close();
    pki.cleanup();
  });

  const scrape = async (): Promise<string> => (await request(`http://127.0.0.1:${proxy.adminPort}/metrics`)).body.text();
  const bad = (text: string, reason: string): number => sample(text, 'portcullis_bad_requests_total', { reason });
  const rss = (): number => memoryOf(proxy.child.pid!).rss;
  /** Waits (at most 3 s) until `reason` was counted `n` more times than in `before`; returns the increase. */
  const counted = async (before: string, reason: string, n = 1): Promise<number> => {
    const deadline = Date.now() + 3000;
    let now = await scrape();
    while (bad(now, reason) - bad(before, reason) < n && Date.now() < deadline) {
      await sleep(50);
      now = await scrape();
    }
    return bad(now, reason) - bad(before, reason);
  };
  const raw = (options?: Parameters<typeof rawH2>[3]): Promise<RawH2> => rawH2(proxy.port, pki.ca.bundlePem, client, options);

  /** A normal client on its own connection: node:http2 with the client SVID, one GET. */
  const normal = async (): Promise<{ status: number; ms: number }> => {
    const started = performance.now();
    const session: ClientHttp2Session = h2connect(`https://localhost:${proxy.port}`, { ca: pki.ca.bundlePem, cert: client.certPem, key: client.keyPem, servername: 'localhost' });
    session.on('error', () => undefined);
    try {
      const status = await new Promise<number>((resolve) => {
        const stream = session.request({ ':path': '/orders/1' });
        stream.on('response', (h) => resolve(Number(h[':status'])));
        stream.on('error', () => resolve(-1));
        stream.resume();
        setTimeout(() => resolve(-2), 3000);
      });
      return { status, ms: performance.now() - started };
    } finally {
      session.destroy();
    }
  };

  /** Runs `abuse` while a normal client asks every 100 ms; every answer must be a 200 within 1 s, also right after. */
  const whileServing = async <T>(abuse: () => Promise<T>): Promise<{ result: T; worstMs: number; probes: number }> => {
    const answers: Array<Promise<{ status: number; ms: number }>> = [normal()];
    const timer = setInterval(() => answers.push(normal()), 100);
    let result: T;
    try {
      result = await abuse();
    } finally {
      clearInterval(timer);
    }
    answers.push(normal());
    const all = await Promise.all(answers);
    for (const a of all) expect(a.status).toBe(200);
    const worstMs = Math.max(...all.map((a) => a.ms));
    expect(worstMs).toBeLessThan(1000);
    return { result, worstMs, probes: all.length };
  };

  const ended = (c: RawH2): Received | undefined => c.goaway() ?? c.received.find((f) => f.type === FRAME.RST_STREAM && f.errorCode === ERROR.ENHANCE_YOUR_CALM);

  interface Flood {
    frames: number;
    bytes: number;
    connections: number;
    /** ms from the first frame to the first connection's close. */
    firstCloseMs: number;
    first: RawH2;
    last: RawH2;
    /** How each connection was told (RST_STREAM ENHANCE_YOUR_CALM, GOAWAY <code>), when its last frames were not lost to the reset. */
    told: Set<string>;
  }

  /**
   * Writes `next(i)` as fast as the socket takes it, for at most `ms` or `maxBytes`; with
   * `reconnect`, opens a new connection each time the proxy ends one (an attacker would).
   */
  const flood = async (next: (i: number) => Buffer[], { ms = 2000, maxBytes = 64 * 1024 * 1024, reconnect = false, ackSettings = true } = {}): Promise<Flood> => {
    const started = performance.now();
    const out: Flood = { frames: 0, bytes: 0, connections: 0, firstCloseMs: -1, first: undefined as unknown as RawH2, last: undefined as unknown as RawH2, told: new Set() };
    while (performance.now() - started < ms && out.bytes < maxBytes) {
      const c = await raw({ ackSettings });
      out.connections++;
      out.last = c;
      out.first ??= c;
      await c.ready();
      let i = 0;
      const first = performance.now();
      while (!c.socket.destroyed && performance.now() - started < ms && out.bytes + c.sent.bytes < maxBytes) {
        for (let k = 0; k < 50; k++) c.send(...next(i++));
        if (c.socket.writableNeedDrain) await new Promise((resolve) => { c.socket.once('drain', resolve); setTimeout(resolve, 50); });
        else await new Promise((resolve) => setImmediate(resolve));
      }
      const closed = await c.closedWithin(2000);
      if (out.firstCloseMs < 0 && closed) out.firstCloseMs = (await c.closed) - (Date.now() - performance.now() + first);
      const how = ended(c);
      if (how) out.told.add(how.type === FRAME.GOAWAY ? `GOAWAY ${how.errorCode}` : `RST_STREAM ${how.errorCode}`);
      out.frames += c.sent.frames;
      out.bytes += c.sent.bytes;
      c.destroy();
      if (!reconnect) break;
    }
    return out;
  };

  const report = (name: string, f: Flood, worstMs: number, rssGrowth: number): void => {
    process.stdout.write(`h2 abuse: ${name}: told ${[...f.told].join(', ') || 'nothing (socket reset)'}; ${f.frames} frames (${(f.bytes / 1048576).toFixed(1)} MiB) on ${f.connections} connection(s); first closed after ${f.firstCloseMs.toFixed(0)} ms; normal client worst ${worstMs.toFixed(0)} ms; proxy RSS +${(rssGrowth / 1048576).toFixed(1)} MiB\n`);
  };

  it('Rapid Reset (CVE-2023-44487): streams opened and reset in a loop get ENHANCE_YOUR_CALM and the connection is cut, each time', async () => {
    const before = await scrape();
    const rss0 = rss();
    const { result: f, worstMs } = await whileServing(() => flood((i) => [frames.headers(1 + 2 * i, hpack(getFields('/orders/1'))), frames.rstStream(1 + 2 * i, ERROR.CANCEL)], { reconnect: true }));
    const growth = rss() - rss0;
    report('Rapid Reset', f, worstMs, growth);
    expect(f.frames).toBeGreaterThan(2000);
    expect(f.connections).toBeGreaterThan(1); // the proxy ended every one it was sent
    expect(f.firstCloseMs).toBeLessThan(1000);
    // Most are told ENHANCE_YOUR_CALM before the cut; on some the reset of the socket loses it.
    expect([...f.told]).toContain(`RST_STREAM ${ERROR.ENHANCE_YOUR_CALM}`);
    expect(await counted(before, 'h2_protocol', f.connections - 1)).toBeGreaterThanOrEqual(f.connections - 1);
    expect(growth).toBeLessThan(64 * 1024 * 1024);
  });

  it('CONTINUATION flood (CVE-2024-27316 class): a header block that never ends is not buffered; GOAWAY and disconnect', async () => {
    const before = await scrape();
    const rss0 = rss();
    const field = hpack([['x-filler', 'v'.repeat(4000)]]);
    const { result: f, worstMs } = await whileServing(() => flood((i) => (i === 0 ? [frames.headers(1, hpack(getFields('/orders/1')), { endHeaders: false })] : [frames.continuation(1, field)])));
    const growth = rss() - rss0;
    report('CONTINUATION flood', f, worstMs, growth);
    // Cut mid-flood: the proxy's GOAWAY, when it sends one, is often lost to the TCP reset that
    // closing a socket with unread bytes causes; the disconnect is what counts.
    expect(f.firstCloseMs).toBeGreaterThanOrEqual(0);
    expect(f.bytes).toBeLessThan(8 * 1024 * 1024); // cut long before 64 MiB or 2 s
    expect(f.firstCloseMs).toBeLessThan(1000);
    expect(await counted(before, 'h2_protocol')).toBeGreaterThanOrEqual(1);
    expect(growth).toBeLessThan(16 * 1024 * 1024);
  });

  for (const [name, next, ackSettings] of [
    ['SETTINGS flood (our ACKs unread)', () => [frames.settings([[4, 65_535]])], false],
    ['PING flood', (i: number) => [frames.ping(i)], true],
    ['empty DATA frames flood', (i: number) => (i === 0 ? [frames.headers(1, hpack(POST()), { endStream: false })] : [frames.data(1)]), true],
  ] as const) {
    it(`${name}: the connection is cut and counted`, async () => {
      const before = await scrape();
      const rss0 = rss();
      const { result: f, worstMs } = await whileServing(() => flood(next, { ackSettings }));
      const growth = rss() - rss0;
      report(name, f, worstMs, growth);
      expect(f.firstCloseMs).toBeGreaterThanOrEqual(0);
      expect(f.firstCloseMs).toBeLessThan(1000);
      expect(await counted(before, 'h2_protocol')).toBeGreaterThanOrEqual(1);
      expect(growth).toBeLessThan(16 * 1024 * 1024);
    });
  }

  it('a WINDOW_UPDATE that overflows the connection window past 2^31-1 (RFC 9113 §6.9.1; CVE-2026-21714 leaked the session): GOAWAY FLOW_CONTROL_ERROR, counted', async () => {
    const before = await scrape();
    const c = await raw();
    await c.ready();
    c.send(frames.windowUpdate(0, 0x7fffffff), frames.windowUpdate(0, 0x7fffffff));
    expect(await c.closedWithin(2000)).toBe(true);
    expect(c.goaway()?.errorCode).toBe(ERROR.FLOW_CONTROL_ERROR);
    expect(await counted(before, 'h2_protocol')).toBe(1);
  });

  it('window stalling: a client that never opens its window holds a large answer without growing the proxy', async () => {
    const rss0 = rss();
    bigWritten = 0;
    const { worstMs } = await whileServing(async () => {
      const c = await raw({ initialSettings: [[4, 0]] }); // SETTINGS_INITIAL_WINDOW_SIZE 0
      c.send(frames.headers(1, hpack(getFields('/big'))));
      await sleep(2000);
      c.destroy();
    });
    const growth = rss() - rss0;
    process.stdout.write(`h2 abuse: window stall: service wrote ${(bigWritten / 1048576).toFixed(1)} MiB of 128 in 2 s; normal client worst ${worstMs.toFixed(0)} ms; proxy RSS +${(growth / 1048576).toFixed(1)} MiB\n`);
    // Backpressure reaches the service: it is held to what the buffers on the way hold.
    expect(bigWritten).toBeLessThan(16 * 1024 * 1024);
    expect(growth).toBeLessThan(32 * 1024 * 1024);
  });

  /** A response HEADERS on `id` with :status 200 (static table index 8, RFC 7541 Appendix A). */
  const answered200 = (c: RawH2, id: number): Promise<Received | undefined> => c.waitFor((f) => f.type === FRAME.HEADERS && f.streamId === id && f.payload?.[0] === 0x88, 3000);
  const seen = (c: RawH2): string => c.received.map((f) => `${f.type}:${f.streamId}:${f.flags}${f.errorCode !== undefined ? ':' + f.errorCode : ''}${f.payload ? ':' + f.payload.subarray(0, 2).toString('hex') : ''}`).join(' ');
  const reset = (c: RawH2, id: number): Promise<Received | undefined> => c.waitFor((f) => f.type === FRAME.RST_STREAM && f.streamId === id, 3000);

  describe(`limits.maxConcurrentStreams (4 here)`, () => {
    it('before the client acknowledges our SETTINGS, a 5th stream is refused (REFUSED_STREAM) and the 4 others are answered', async () => {
      const before = await scrape();
      const c = await raw({ ackSettings: false });
      for (let k = 0; k < 5; k++) c.send(frames.headers(1 + 2 * k, hpack(POST()), { endStream: false }));
      expect((await reset(c, 9))?.errorCode).toBe(ERROR.REFUSED_STREAM);
      c.send(frames.settingsAck());
      for (let k = 0; k < 4; k++) c.send(frames.data(1 + 2 * k, Buffer.alloc(0), true));
      for (let k = 0; k < 4; k++) expect(await answered200(c, 1 + 2 * k), `stream ${1 + 2 * k}: ${seen(c)}`).toBeDefined();
      // Answered to their end (END_STREAM), so that a new one is within the limit again.
      for (let k = 0; k < 4; k++) expect(await c.waitFor((f) => (f.type === FRAME.DATA || f.type === FRAME.HEADERS) && f.streamId === 1 + 2 * k && (f.flags & 0x1) !== 0, 3000)).toBeDefined();
      // nghttp2 refused it before node:http2 saw it: counted from the stream ids it processed.
      c.send(frames.headers(11, hpack(getFields())));
      expect(await answered200(c, 11), seen(c)).toBeDefined();
      expect(await counted(before, 'h2_stream')).toBe(1);
      c.destroy();
    });

    it('once our SETTINGS are acknowledged, a 5th stream is a connection error (RFC 9113 §5.1.2: GOAWAY PROTOCOL_ERROR), counted; other connections are served', async () => {
      const before = await scrape();
      const { result: c } = await whileServing(async () => {
        const c = await raw();
        await c.ready();
        for (let k = 0; k < 5; k++) c.send(frames.headers(1 + 2 * k, hpack(POST()), { endStream: false }));
        await c.closedWithin(2000);
        return c;
      });
      expect(c.goaway()?.errorCode).toBe(ERROR.PROTOCOL_ERROR);
      expect(c.socket.destroyed).toBe(true);
      expect(await counted(before, 'h2_protocol')).toBe(1);
    });

    it('a node:http2 client asking 12 at once is held to 4 by our SETTINGS and gets all 12 answers', async () => {
      const session = h2connect(`https://localhost:${proxy.port}`, { ca: pki.ca.bundlePem, cert: client.certPem, key: client.keyPem, servername: 'localhost' });
      await new Promise((resolve) => session.once('remoteSettings', resolve));
      expect(session.remoteSettings.maxConcurrentStreams).toBe(4);
      const statuses = await Promise.all(
        Array.from({ length: 12 }, () => new Promise<number>((resolve) => {
          const stream = session.request({ ':path': '/orders/1' });
          stream.on('response', (h) => resolve(Number(h[':status'])));
          stream.on('error', () => resolve(-1));
          stream.resume();
        })),
      );
      session.close();
      expect(statuses).toEqual(Array(12).fill(200));
    });
  });

  describe('malformed requests: a stream error from nghttp2 (RST_STREAM PROTOCOL_ERROR), counted, the connection still serving', () => {
    const cases: Array<[string, Array<readonly [string, string]>]> = [
      ['an invalid pseudo-header', [...getFields(), [':foo', 'x']]],
      ['a duplicated :path', [...getFields(), [':path', '/orders/2']]],
      ['a pseudo-header after a regular field', [[':method', 'GET'], ['x-a', 'b'], [':scheme', 'https'], [':authority', 'localhost'], [':path', '/orders/1']]],
      ['no :path', [[':method', 'GET'], [':scheme', 'https'], [':authority', 'localhost']]],
      ['an uppercase header name', getFields('/orders/1', [['X-Upper', 'a']])],
      ['connection: keep-alive', getFields('/orders/1', [['connection', 'keep-alive']])],
      ['transfer-encoding', getFields('/orders/1', [['transfer-encoding', 'chunked']])],
      ['te: gzip', getFields('/orders/1', [['te', 'gzip']])],
      ['neither :authority nor host', [[':method', 'GET'], [':scheme', 'https'], [':path', '/orders/1']]],
    ];
    for (const [name, fields] of cases) {
      it(name, async () => {
        const before = await scrape();
        const c = await raw();
        await c.ready();
        c.send(frames.headers(1, hpack(fields)));
        expect((await reset(c, 1))?.errorCode).toBe(ERROR.PROTOCOL_ERROR);
        // The connection serves the next request, and the refused stream is counted on it.
        c.send(frames.headers(3, hpack(getFields())));
        expect(await answered200(c, 3)).toBeDefined();
        expect(await counted(before, 'h2_stream')).toBe(1);
        c.destroy();
      });
    }

    it('a stream refused as the last act of a connection is counted when the peer hangs up', async () => {
      const before = await scrape();
      const c = await raw();
      await c.ready();
      c.send(frames.headers(1, hpack(getFields('/orders/1', [['X-Upper', 'a']]))));
      expect((await reset(c, 1))?.errorCode).toBe(ERROR.PROTOCOL_ERROR);
      c.destroy();
      expect(await counted(before, 'h2_stream')).toBe(1);
    });
  });

  describe('malformed requests our own admission refuses, with the SPEC 400', () => {
    const ask = async (headers: Record<string, string>): Promise<{ status: number; headers: Record<string, unknown>; body: string }> => {
      const session = h2connect(`https://localhost:${proxy.port}`, { ca: pki.ca.bundlePem, cert: client.certPem, key: client.keyPem, servername: 'localhost' });
      try {
        return await new Promise((resolve, reject) => {
          const stream = session.request(headers);
          let body = '';
          let head: Record<string, unknown> = {};
          stream.on('response', (h) => (head = h));
          stream.setEncoding('utf8');
          stream.on('data', (chunk: string) => (body += chunk));
          stream.on('end', () => resolve({ status: Number(head[':status']), headers: head, body }));
          stream.on('error', reject);
        });
      } finally {
        session.close();
      }
    };

    it('a :path our parser refuses: 400 bad_path as JSON, or for gRPC grpc-status 3 INVALID_ARGUMENT', async () => {
      const before = await scrape();
      const json = await ask({ ':path': '/orders/a%2Fb' });
      expect(json.status).toBe(400);
      expect(JSON.parse(json.body)).toMatchObject({ reason: 'bad_path' });
      const grpc = await ask({ ':method': 'POST', ':path': '/demo.v1.Demo/a%2Fb', 'content-type': 'application/grpc', te: 'trailers' });
      expect(grpc.status).toBe(200);
      expect(grpc.headers['grpc-status']).toBe('3');
      expect(grpc.headers['grpc-message']).toBe('bad_path');
      expect(await counted(before, 'bad_path', 2)).toBe(2);
    });

    it('CONNECT: 400 bad_request', async () => {
      const before = await scrape();
      const c = await raw();
      await c.ready();
      c.send(frames.headers(1, hpack([[':method', 'CONNECT'], [':authority', 'localhost:443']])));
      const data = await c.waitFor((f) => f.type === FRAME.DATA && f.streamId === 1);
      expect(c.received.find((f) => f.type === FRAME.HEADERS && f.streamId === 1)?.payload?.[0]).toBe(0x8c); // :status 400 (static index 12)
      expect(JSON.parse(data!.payload!.toString())).toMatchObject({ reason: 'bad_request' });
      expect(await counted(before, 'malformed')).toBe(1);
      c.destroy();
    });
  });

  it('a client that resets its stream with an error code (RST_STREAM PROTOCOL_ERROR, not CANCEL) while it is answered: the proxy lives on', async () => {
    const { result: c } = await whileServing(async () => {
      const c = await raw();
      await c.ready();
      for (let k = 0; k < 5; k++) c.send(frames.headers(1 + 2 * k, hpack(getFields('/orders/1'))), frames.rstStream(1 + 2 * k, ERROR.PROTOCOL_ERROR));
      await sleep(100); // (node:http2 counts reset streams against the limit until it has cleaned them up)
      c.send(frames.headers(11, hpack(getFields())));
      await answered200(c, 11);
      return c;
    });
    expect(await answered200(c, 11), seen(c)).toBeDefined();
    expect(proxy.child.exitCode).toBeNull();
    c.destroy();
  });

  it('a GET that says content-length: 0 and then sends DATA (RFC 9113 §8.1.1) ends its connection, counted; the proxy lives on', async () => {
    const before = await scrape();
    const { result: c } = await whileServing(async () => {
      const c = await raw();
      await c.ready();
      c.send(frames.headers(1, hpack(getFields('/orders/1', [['content-length', '0']])), { endStream: false }), frames.data(1, Buffer.from('smuggled'), true));
      await c.closedWithin(2000);
      return c;
    });
    // nghttp2 reports it as a session failure: GOAWAY INTERNAL_ERROR, not a stream reset.
    expect(c.goaway()?.errorCode).toBe(ERROR.INTERNAL_ERROR);
    expect(await counted(before, 'h2_protocol')).toBe(1);
    expect(proxy.child.exitCode).toBeNull();
  });

  it(`a header list over limits.maxHeaderBytes (HEADERS + CONTINUATION, 20 KiB) is refused, counted, and the proxy serves others`, async () => {
    const before = await scrape();
    const { result: c } = await whileServing(async () => {
      const c = await raw();
      await c.ready();
      const block = hpack(getFields('/orders/1', [['x-a', 'a'.repeat(10_000)], ['x-b', 'b'.repeat(10_000)]]));
      c.send(frames.headers(1, block.subarray(0, 16_000), { endHeaders: false }), frames.continuation(1, block.subarray(16_000), true));
      await c.waitFor((f) => (f.type === FRAME.RST_STREAM && f.streamId === 1) || f.type === FRAME.GOAWAY);
      return c;
    });
    // node:http2 refuses the stream itself (its header size check, before nghttp2's): ENHANCE_YOUR_CALM.
    expect(c.received.find((f) => f.type === FRAME.RST_STREAM && f.streamId === 1)?.errorCode).toBe(ERROR.ENHANCE_YOUR_CALM);
    c.destroy();
    expect(await counted(before, 'h2_stream')).toBe(1);
  });

  describe('slow and idle peers are closed within the configured limits (headersTimeout 1 s, idleTimeout 3 s)', () => {
    it('a connection that never sends the client preface: closed after headersTimeout, counted', async () => {
      const before = await scrape();
      const c = await raw({ preface: false, ackSettings: false });
      const opened = Date.now();
      expect(await c.closedWithin(4000)).toBe(true);
      const after = (await c.closed) - opened;
      process.stdout.write(`h2 abuse: no preface: closed after ${after} ms\n`);
      expect(after).toBeGreaterThanOrEqual(900);
      expect(after).toBeLessThan(2000); // idleTimeout (3 s) did not do it
      expect(await counted(before, 'timeout')).toBe(1);
    });

    it('HEADERS without END_HEADERS, then nothing: GOAWAY and closed after headersTimeout, counted', async () => {
      const before = await scrape();
      const c = await raw();
      await c.ready();
      c.send(frames.headers(1, hpack(getFields()), { endHeaders: false }));
      const sent = Date.now();
      expect(await c.closedWithin(4000)).toBe(true);
      const after = (await c.closed) - sent;
      process.stdout.write(`h2 abuse: incomplete header block: closed after ${after} ms, GOAWAY ${c.goaway()?.errorCode}\n`);
      expect(after).toBeGreaterThanOrEqual(900);
      expect(after).toBeLessThan(2000); // idleTimeout (3 s) did not do it
      expect(c.goaway()).toBeDefined();
      expect(await counted(before, 'timeout')).toBe(1);
    });

    it('a healthy idle connection lives until idleTimeout, also after a stream that was quiet for longer than that', { timeout: 15_000 }, async () => {
      const session = h2connect(`https://localhost:${proxy.port}`, { ca: pki.ca.bundlePem, cert: client.certPem, key: client.keyPem, servername: 'localhost' });
      const closed = new Promise<number>((resolve) => session.once('close', () => resolve(Date.now())));
      // /slow answers 'a', then is silent 3.5 s (past idleTimeout) before its end: the open stream keeps the connection.
      const body = await new Promise<string>((resolve) => {
        const stream = session.request({ ':path': '/slow' });
        let text = '';
        stream.setEncoding('utf8');
        stream.on('data', (chunk: string) => (text += chunk));
        stream.on('end', () => resolve(text));
      });
      const idleFrom = Date.now();
      expect(body).toBe('ab');
      const at = await Promise.race([closed, sleep(7000).then(() => -1)]);
      session.destroy();
      process.stdout.write(`h2 abuse: idle after a quiet stream: closed after ${at - idleFrom} ms\n`);
      expect(at).toBeGreaterThan(0); // closed at all: node's setTimeout(ms, cb) listens only once
      expect(at - idleFrom).toBeGreaterThanOrEqual(2500);
      expect(at - idleFrom).toBeLessThan(4500);
    });
  });
});
