// A 32 MiB upload streams through `portcullis run` without the proxy holding it in memory. The
// service stalls at first: a proxy that buffered would take in the whole upload meanwhile;
// one that streams passes the stall back to the client, so both the bytes sent and the
// proxy's RSS stay small until the service reads again.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { clientAgent, configYaml, createPki, DEFAULT_ROUTES, startUpstream, type Handler, type Pki, type Upstream } from '../support/harness.ts';
import { memoryOf, startChildProxy, type ChildProxy } from '../support/child-proxy.ts';

const MiB = 1024 * 1024;
const UPLOAD = 32 * MiB;
let sent = 0;
const stalled = Promise.withResolvers<{ sentEarly: number; sent: number; memory: { peak: number; rss: number } }>();

describe('streaming a large upload', () => {
  let pki: Pki;
  let upstream: Upstream;
  let proxy: ChildProxy;
  let streamingHandler: Handler;

  beforeAll(async () => {
    pki = await createPki();
    upstream = await startUpstream(() => undefined);
    streamingHandler = (req, res) => {
      req.pause();
      // Sample how far the client got twice during the stall: with backpressure it has stopped.
      let sentEarly = 0;
      setTimeout(() => (sentEarly = sent), 1200);
      setTimeout(() => {
        stalled.resolve({ sentEarly, sent, memory: memoryOf(proxy.child.pid!) });
        req.resume();
      }, 2000);
      const hash = createHash('sha256');
      let bytes = 0;
      req.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        hash.update(chunk);
      });
      req.on('end', () => res.end(JSON.stringify({ bytes, sha256: hash.digest('hex') })));
    };
    proxy = await startChildProxy(pki.write('portcullis.yaml', configYaml(pki, upstream.url, DEFAULT_ROUTES)));
  });
  afterAll(async () => {
    expect(await proxy.stop()).toBe(0);
    await upstream.close();
    pki.cleanup();
  });

  it('passes 32 MiB through intact while the proxy RSS grows by far less than that', async () => {
    const agent = clientAgent(pki.ca.bundlePem, await pki.ca.svid('/ns/prod/sa/uploader'));
    const url = `https://localhost:${proxy.port}/upload`;
    // Warm up: TLS, pools and JIT-compiled code are part of the baseline, not of the upload.
    // The warm-up requests are answered at once, not stalled.
    upstream.handler = (req, res) => req.resume().on('end', () => res.end('{}'));
    for (let i = 0; i < 3; i++) await (await request(url, { dispatcher: agent, method: 'POST', body: Buffer.alloc(256 * 1024, 1) })).body.text();
    upstream.handler = streamingHandler;
    const before = memoryOf(proxy.child.pid!);

    const CHUNK = 64 * 1024;
    const expected = createHash('sha256');
    async function* body() {
      for (let i = 0; i < UPLOAD / CHUNK; i++) {
        // A fresh buffer each time: the client may still hold the previous one.
        const chunk = Buffer.alloc(CHUNK, i & 0xff);
        expected.update(chunk);
        sent += chunk.length;
        yield chunk;
      }
    }
    const response = await request(url, { dispatcher: agent, method: 'POST', body: Readable.from(body()) });
    const seen = (await response.body.json()) as { bytes: number; sha256: string };
    expect(response.statusCode).toBe(200);
    expect(seen.bytes).toBe(UPLOAD);
    expect(seen.sha256).toBe(expected.digest('hex'));

    const during = await stalled.promise;
    // Held back: the client stopped sending well before the end (what it did send sits in the
    // loopback kernel buffers of four sockets, a few MiB each, more on a busy machine) and made
    // no progress between the two samples.
    expect(during.sent).toBeLessThan(UPLOAD * 0.75);
    expect(during.sent - during.sentEarly).toBeLessThan(MiB);
    // A buffering proxy would hold all 32 MiB here and then some. A streaming one holds its
    // stream buffers plus not-yet-collected garbage of the bytes it already passed on (measured
    // 5 to 19 MiB, depending on when the GC last ran): the memory does not grow by the upload.
    expect(during.memory.rss - before.rss).toBeLessThan(UPLOAD);
    console.info(`streaming check: the stalled service held the client back after ${(during.sent / MiB).toFixed(1)} MiB sent; proxy RSS grew ${((during.memory.rss - before.rss) / MiB).toFixed(1)} MiB`);
    await agent.close();
  });
});
