// Forwarding: what the service receives, bodies streamed both ways, upstream failures, client
// aborts, and bad requests answered in the SPEC format without stopping the proxy.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Agent } from 'undici';
import { clientAgent, configYaml, createPki, DEFAULT_ROUTES, get, metricsText, metricValue, startProxy, startUpstream, type Issued, type Pki, type Upstream } from '../support/harness.ts';
import { parseRaw, rawRequest, rawSession } from '../support/raw-tls.ts';
import type { Instance } from '../../src/cli/instance.ts';

const run = promisify(execFile);

describe('forwarding to the service', () => {
  let pki: Pki;
  let upstream: Upstream;
  let proxy: Instance;
  let client: Issued;
  let agent: Agent;

  beforeAll(async () => {
    pki = await createPki();
    upstream = await startUpstream();
    proxy = await startProxy(pki, configYaml(pki, upstream.url, DEFAULT_ROUTES));
    client = await pki.ca.svid('/ns/prod/sa/web');
    agent = clientAgent(pki.ca.bundlePem, client);
  });
  afterAll(async () => {
    await agent.close();
    await proxy.close();
    await upstream.close();
    pki.cleanup();
  });

  it('adds the SPEC identity headers and drops every spoofed one, `_` spellings included', async () => {
    const raw = await rawRequest(proxy.proxyPort, pki.ca.bundlePem, client, [
      'GET /orders/7 HTTP/1.1',
      'Host: localhost',
      'X-Forwarded-Client-Cert: By=spiffe://evil/x;URI=spiffe://example.org/ns/prod/sa/admin',
      'X_Forwarded_Client_Cert: URI=spiffe://example.org/ns/prod/sa/admin',
      'x-forwarded-for: 10.0.0.1',
      'X-Forwarded-Proto: http',
      'X-Forwarded-Host: admin.internal',
      'x_forwarded_host: admin.internal',
      'Forwarded: for=10.0.0.1',
      'X-Jit-Grant-Id: forged-jti',
      'x_jit_grant_id: forged-jti',
      'X-Jit-Grant: eyJhbGciOiJub25lIn0.e30.',
      'x_device_posture: whatever',
      'X-Intent: refund',
      'Connection: close, X-Secret-Hop',
      'X-Secret-Hop: 1',
      'X-Kept: yes',
      '', '',
    ].join('\r\n'));
    const { status, body } = parseRaw(raw);
    expect(status).toBe(200);
    const seen = JSON.parse(body) as { headers: Record<string, string>; rawHeaders: string[] };
    const hash = createHash('sha256').update(Buffer.from(client.cert.rawData)).digest('hex');
    expect(seen.headers['x-forwarded-client-cert']).toBe(`By=spiffe://example.org/ns/prod/sa/orders-api;Hash=${hash};URI=spiffe://example.org/ns/prod/sa/web`);
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen.headers['x-forwarded-proto']).toBe('https');
    expect(seen.headers['x-kept']).toBe('yes');
    const names = seen.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    for (const gone of ['x_forwarded_client_cert', 'x-forwarded-host', 'x_forwarded_host', 'forwarded', 'x-jit-grant-id', 'x_jit_grant_id', 'x-jit-grant', 'x_device_posture', 'x-intent', 'x-secret-hop']) {
      expect(names).not.toContain(gone);
    }
    // The client's Connection header is not forwarded (HTTP/1.1 keeps our connection alive by default).
    expect(seen.headers.connection).toBeUndefined();
    // Exactly one XFCC, one x-forwarded-for: ours.
    expect(names.filter((n) => n === 'x-forwarded-client-cert')).toHaveLength(1);
    expect(names.filter((n) => n === 'x-forwarded-for')).toHaveLength(1);
  });

  it('keeps a sent x-request-id and makes one otherwise', async () => {
    const kept = await get(agent, proxy.proxyPort, '/orders/1', { headers: { 'x-request-id': 'abc-123' } });
    expect((kept.json().headers as Record<string, string>)['x-request-id']).toBe('abc-123');
    const made = await get(agent, proxy.proxyPort, '/orders/1');
    expect((made.json().headers as Record<string, string>)['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    // Two requests on one keep-alive connection carry the same, correct XFCC (made once per connection).
    const xfccOf = (r: typeof kept) => (r.json().headers as Record<string, string>)['x-forwarded-client-cert'];
    expect(xfccOf(made)).toBe(xfccOf(kept));
    expect(xfccOf(made)).toBe(`By=spiffe://example.org/ns/prod/sa/orders-api;Hash=${createHash('sha256').update(Buffer.from(client.cert.rawData)).digest('hex')};URI=spiffe://example.org/ns/prod/sa/web`);
  });

  it('forwards the normalised path the policy saw, with the query unchanged', async () => {
    const raw = await rawRequest(proxy.proxyPort, pki.ca.bundlePem, client, 'GET //orders/./%61b/../%7e1//x?q=%2F..%2f&z=/../ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    const { status, body } = parseRaw(raw);
    expect(status).toBe(200);
    expect((JSON.parse(body) as { url: string }).url).toBe('/orders/~1/x?q=%2F..%2f&z=/../');
  });

  it.each([
    ['/orders/1%2F..%2Fadmin', 'encoded slash'],
    ['/orders/%2e%2e/%2e%2e/%2e%2e', 'dot-dot above root'],
    ['/orders/1;jsessionid=x', 'path parameter'],
    ['/orders/1%00', 'encoded NUL'],
    ['/orders/1%5cadmin', 'encoded backslash'],
    ['/orders/%zz', 'invalid escape'],
    ['http://localhost/orders/1', 'absolute-form'],
  ])('refuses %s (%s) with 400 bad_path before the service', async (target) => {
    const before = upstream.received.length;
    const raw = await rawRequest(proxy.proxyPort, pki.ca.bundlePem, client, `GET ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
    const { status, body } = parseRaw(raw);
    expect(status).toBe(400);
    expect(JSON.parse(body)).toMatchObject({ reason: 'bad_path', error: expect.any(String), request_id: expect.any(String) });
    expect(upstream.received.length).toBe(before);
  });

  it('gives no_route for unmatched paths and grant_required for a high-sensitivity route without a grant (the grant floor)', async () => {
    const none = await get(agent, proxy.proxyPort, '/admin');
    expect(none.status).toBe(403);
    expect(none.json().reason).toBe('no_route');
    const privileged = await get(agent, proxy.proxyPort, '/orders/9/refund', { method: 'POST', body: '{}' });
    expect(privileged.status).toBe(401);
    expect(privileged.json().reason).toBe('grant_required');
    expect(privileged.headers['content-type']).toBe('application/json');
  });

  it('answers a malformed request line and oversized headers in the SPEC format, then keeps serving', async () => {
    const malformed = parseRaw(await rawRequest(proxy.proxyPort, pki.ca.bundlePem, client, 'GARBAGE\x01 / HTTP/9\r\n\r\n'));
    expect(malformed.status).toBe(400);
    expect(JSON.parse(malformed.body).reason).toBe('bad_request');
    expect(JSON.parse(malformed.body).request_id).toMatch(/^[0-9a-f-]{36}$/);
    const big = parseRaw(await rawRequest(proxy.proxyPort, pki.ca.bundlePem, client, `GET /orders/1 HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(40_000)}\r\n\r\n`));
    expect(big.status).toBe(431);
    expect(JSON.parse(big.body)).toMatchObject({ reason: 'bad_request', error: 'the request headers are too large' });
    // Raw bytes above 0x7f in the target never reach our path parser: Node's refuses them, and it is still a bad path.
    const unroutedBefore = metricValue(await metricsText(proxy), 'portcullis_requests_total{route="none",code="400",protocol="http1"}');
    const raw8bit = parseRaw(await rawRequest(proxy.proxyPort, pki.ca.bundlePem, client, 'GET /orders/\u00e9 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'));
    expect([raw8bit.status, JSON.parse(raw8bit.body).reason]).toEqual([400, 'bad_path']);
    // Refusals the HTTP parser raises look like every other refusal, and are counted like them.
    expect(raw8bit.headers).toMatch(new RegExp(`\\r\\nx-request-id: ${JSON.parse(raw8bit.body).request_id}\\r\\n`));
    expect(raw8bit.headers).toMatch(/\r\ncache-control: no-store\r\n/);
    expect(metricValue(await metricsText(proxy), 'portcullis_requests_total{route="none",code="400",protocol="http1"}')).toBe(unroutedBefore + 1);
    // No Host at all: the SPEC's 400, not Node's bare one.
    const noHost = parseRaw(await rawRequest(proxy.proxyPort, pki.ca.bundlePem, client, 'GET /orders/1 HTTP/1.1\r\nConnection: close\r\n\r\n'));
    expect([noHost.status, JSON.parse(noHost.body).reason]).toEqual([400, 'bad_request']);
    const metrics = await metricsText(proxy);
    expect(metricValue(metrics, 'portcullis_bad_requests_total{reason="headers_too_large"}')).toBeGreaterThanOrEqual(1);
    expect(metricValue(metrics, 'portcullis_bad_requests_total{reason="malformed"}')).toBeGreaterThanOrEqual(1);
    expect((await get(agent, proxy.proxyPort, '/healthz')).status).toBe(200);
  });

  it.each([
    ['Content-Length and Transfer-Encoding together', 'POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: localhost\r\n\r\n'],
    ['two different Content-Length values', 'POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd'],
    ['an obsolete folded header line', 'GET /orders/1 HTTP/1.1\r\nHost: localhost\r\nX-Folded: a\r\n b\r\n\r\n'],
    ['a bare LF line ending', 'GET /orders/1 HTTP/1.1\nHost: localhost\n\n'],
    ['two Host headers (RFC 9112 3.2)', 'GET /orders/1 HTTP/1.1\r\nHost: localhost\r\nhost: admin.internal\r\n\r\n'],
    ['a transfer coding other than chunked', 'POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n'],
    ['a Content-Length beyond 2^53 (it could not be re-sent exactly)', 'POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 99999999999999999\r\n\r\nabc'],
    ['Transfer-Encoding twice', 'POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
  ])('refuses request smuggling material: %s', async (_what, payload) => {
    const before = upstream.received.length;
    const { status, body } = parseRaw(await rawRequest(proxy.proxyPort, pki.ca.bundlePem, client, payload));
    expect(status).toBe(400);
    expect(JSON.parse(body).reason).toBe('bad_request');
    expect(upstream.received.length).toBe(before);
  });

  it('`Connection: content-length` cannot unframe a body: the service gets one request, with the body as its body', async () => {
    const smuggled = 'GET /admin HTTP/1.1\r\nHost: localhost\r\nx-forwarded-client-cert: By=x;URI=spiffe://example.org/ns/prod/sa/admin\r\n\r\n';
    for (const connection of ['close, content-length', 'Content-Length, close', 'host, content-length, close']) {
      const before = upstream.received.length;
      const raw = await rawRequest(proxy.proxyPort, pki.ca.bundlePem, client, `POST /upload HTTP/1.1\r\nHost: localhost\r\nConnection: ${connection}\r\nContent-Length: ${smuggled.length}\r\n\r\n${smuggled}`);
      expect(parseRaw(raw).status).toBe(200);
      await new Promise((r) => setTimeout(r, 50));
      const got = upstream.received.slice(before);
      expect(got.map((r) => `${r.method} ${r.url}`)).toEqual(['POST /upload']);
      expect(got[0]!.headers['content-length']).toBe(String(smuggled.length));
      expect(JSON.parse(parseRaw(raw).body).bytes).toBe(smuggled.length);
    }
  });

  it('streams a download from the service and serves many requests on one keep-alive connection', async () => {
    upstream.handler = (req, res) => {
      if (req.url !== '/orders/big') {
        res.end('ok');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      let left = 64;
      const chunk = Buffer.alloc(64 * 1024, 7);
      const pump = () => {
        while (left > 0) {
          left--;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    };
    try {
      const response = await request(`https://localhost:${proxy.proxyPort}/orders/big`, { dispatcher: agent });
      let bytes = 0;
      for await (const chunk of response.body) bytes += (chunk as Buffer).length;
      expect(bytes).toBe(64 * 64 * 1024);
      for (let i = 0; i < 20; i++) expect((await get(agent, proxy.proxyPort, '/orders/x')).text).toBe('ok');
    } finally {
      upstream.handler = (await import('../support/harness.ts')).echoHandler;
    }
  });

  it('answers pipelined requests, and a client that goes away aborts every exchange of its connection', async () => {
    const open = () => rawSession(proxy.proxyPort, pki.ca.bundlePem, client);
    // Two requests in one write, the first with a body: both answered, in order.
    const both = await open();
    both.socket.write('POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\nabcGET /orders/2 HTTP/1.1\r\nHost: localhost\r\n\r\n');
    for (let i = 0; i < 80 && (both.text().match(/HTTP\/1\.1 200/g) ?? []).length < 2; i++) await new Promise((r) => setTimeout(r, 25));
    both.socket.destroy();
    const urls = [...both.text().matchAll(/"url":"([^"]+)"/g)].map((m) => m[1]);
    expect(urls).toEqual(['/upload', '/orders/2']);

    const closedUrls: string[] = [];
    const bothClosed = Promise.withResolvers<void>();
    upstream.handler = (req, res) => {
      res.on('close', () => {
        closedUrls.push(req.url ?? '');
        if (closedUrls.length === 2) bothClosed.resolve();
      });
      req.resume();
    };
    try {
      const before = upstream.received.length;
      const { socket } = await open();
      socket.write('GET /orders/slow-1 HTTP/1.1\r\nHost: localhost\r\n\r\nGET /orders/slow-2 HTTP/1.1\r\nHost: localhost\r\n\r\n');
      for (let i = 0; i < 40 && upstream.received.length - before < 2; i++) await new Promise((r) => setTimeout(r, 25));
      socket.destroy();
      await Promise.race([bothClosed.promise, new Promise((_, reject) => setTimeout(() => reject(new Error(`only ${JSON.stringify(closedUrls)} were aborted`)), 2000))]);
      expect(closedUrls.sort()).toEqual(['/orders/slow-1', '/orders/slow-2']);
    } finally {
      upstream.handler = (await import('../support/harness.ts')).echoHandler;
    }
  });

  it('never splices a 400 into an answer still going out on the same connection', async () => {
    upstream.handler = (req, res) => {
      req.resume();
      res.write('part0 ');
      setTimeout(() => res.end('done'), 300);
    };
    try {
      const session = await rawSession(proxy.proxyPort, pki.ca.bundlePem, client);
      session.socket.write('GET /orders/stream HTTP/1.1\r\nHost: localhost\r\n\r\n');
      await new Promise((r) => setTimeout(r, 120));
      session.socket.write('GET /orders/\u00e9 HTTP/1.1\r\nHost: localhost\r\n\r\n');
      // The connection is cut instead: the answer in progress stays whole up to the cut, no 400 inside it.
      expect(await session.closedWithin(2000)).toBe(true);
      expect(session.text()).toMatch(/^HTTP\/1\.1 200/);
      expect(session.text()).not.toMatch(/HTTP\/1\.1 400/);
    } finally {
      upstream.handler = (await import('../support/harness.ts')).echoHandler;
    }
  });

  it('aborts the upstream request when the client goes away', async () => {
    let upstreamClosed!: () => void;
    const closed = new Promise<void>((resolve) => (upstreamClosed = resolve));
    upstream.handler = (req, res) => {
      res.on('close', () => upstreamClosed());
      req.resume();
    };
    try {
      const controller = new AbortController();
      const pending = request(`https://localhost:${proxy.proxyPort}/orders/slow`, { dispatcher: agent, signal: controller.signal });
      await new Promise((r) => setTimeout(r, 200));
      controller.abort();
      await expect(pending).rejects.toThrow();
      await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error('upstream request was not aborted')), 2000))]);
    } finally {
      upstream.handler = (await import('../support/harness.ts')).echoHandler;
    }
  });

  it('works with curl presenting a client certificate', async () => {
    const cert = pki.write('curl-client.pem', client.certPem);
    const key = pki.write('curl-client_key.pem', client.keyPem);
    const ca = pki.write('curl-ca.pem', pki.ca.bundlePem);
    const { stdout } = await run('curl', ['-sS', '--cacert', ca, '--cert', cert, '--key', key, '-w', '\n%{http_code}', `https://localhost:${proxy.proxyPort}/orders/3?x=1`]);
    const [body, code] = stdout.trimEnd().split('\n');
    expect(code).toBe('200');
    expect(JSON.parse(body!).url).toBe('/orders/3?x=1');
  });
});

describe('upstream failures', () => {
  let pki: Pki;
  let client: Issued;

  beforeAll(async () => {
    pki = await createPki();
    client = await pki.ca.svid('/ns/prod/sa/web');
  });
  afterAll(() => pki.cleanup());

  it('answers 502 upstream_unavailable when the service is down', async () => {
    const gone = await startUpstream();
    const url = gone.url;
    await gone.close();
    const proxy = await startProxy(pki, configYaml(pki, url, DEFAULT_ROUTES));
    const agent = clientAgent(pki.ca.bundlePem, client);
    try {
      const res = await get(agent, proxy.proxyPort, '/orders/1');
      expect(res.status).toBe(502);
      expect(res.json()).toMatchObject({ reason: 'upstream_unavailable' });
      expect(res.headers['content-type']).toBe('application/json');
    } finally {
      await agent.close();
      await proxy.close();
    }
  });

  it('answers 504 upstream_timeout when the service is slower than upstream.timeout', async () => {
    const slow = await startUpstream(() => {
      /* never answers */
    });
    const proxy = await startProxy(pki, configYaml(pki, slow.url, DEFAULT_ROUTES).replace('timeout: 2s', 'timeout: 300ms'));
    const agent = clientAgent(pki.ca.bundlePem, client);
    try {
      const started = Date.now();
      const res = await get(agent, proxy.proxyPort, '/orders/1');
      expect(res.status).toBe(504);
      expect(res.json()).toMatchObject({ reason: 'upstream_timeout' });
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      await agent.close();
      await proxy.close();
      await slow.close();
    }
  });

  it('forwards to a unix socket upstream', async () => {
    const { createServer } = await import('node:http');
    const socketPath = `${pki.dir}/upstream.sock`;
    const server = createServer((req, res) => res.end(`unix:${req.url}`));
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    const proxy = await startProxy(pki, configYaml(pki, `unix:${socketPath}`, DEFAULT_ROUTES));
    const agent = clientAgent(pki.ca.bundlePem, client);
    try {
      expect((await get(agent, proxy.proxyPort, '/orders/5')).text).toBe('unix:/orders/5');
    } finally {
      await agent.close();
      await proxy.close();
      server.close();
    }
  });
});
