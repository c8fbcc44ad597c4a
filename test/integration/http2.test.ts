// HTTP/2 and gRPC on the same listener as HTTP/1.1 (SPEC "Protocols and streams"): the very same
// admission for every protocol, HTTP/2 requests translated to the HTTP/1.1 service, gRPC refused
// gRPC's way, and every exchange cut when its grounds end: a streaming HTTP/1.1 response, an
// HTTP/2 stream, the connection itself when the peer's SVID expires.
import { connect as h2connect, constants, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import type { Agent } from 'undici';
import { clientAgent, configYaml, createPki, get, startUpstream, type Issued, type Pki, type Upstream } from '../support/harness.ts';
import type { Instance } from '../../src/cli/instance.ts';
import { admin, grantClaims, issuerKey, JIT_ISS, metric, POSTURE_ISS, signToken, sleep, startNamed, type IssuerKey } from './decision-support.ts';
import type { memoryAuditLog } from '../../src/telemetry/audit.ts';

const run = promisify(execFile);

const ROUTES = `routes:
  - name: orders
    match: { path: "/orders/**" }
    privileged: false
  - name: feed
    match: { methods: [GET], path: /feed }
    action: feed.read
    resource: feed
    sensitivity: low
  - name: grpc-open
    match: { path: "/demo.v1.Demo/**" }
    privileged: false
  - name: grpc-guarded
    match: { path: "/demo.v1.Guarded/**" }
    action: demo.call
    resource: "grpc:x"
    sensitivity: high
`;

interface H2Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

function h2request(session: ClientHttp2Session, headers: Record<string, string>, body?: string): Promise<H2Answer> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined });
    let status = 0;
    let responseHeaders: IncomingHttpHeaders = {};
    let text = '';
    stream.on('response', (h) => {
      status = Number(h[':status']);
      responseHeaders = h;
    });
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => (text += chunk));
    stream.on('end', () => resolve({ status, headers: responseHeaders, body: text }));
    stream.on('error', reject);
    if (body !== undefined) stream.end(body);
  });
}

function h2client(port: number, pki: Pki, client: Issued): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = h2connect(`https://localhost:${port}`, { ca: pki.ca.bundlePem, cert: client.certPem, key: client.keyPem, servername: 'localhost' });
    session.once('connect', () => resolve(session));
    session.once('error', reject);
  });
}

/** A grpc-js client for one method of any service, with raw byte messages (no proto files). */
function grpcClient(port: number, pki: Pki, client: Issued): grpc.Client {
  const credentials = grpc.credentials.createSsl(Buffer.from(pki.ca.bundlePem), Buffer.from(client.keyPem), Buffer.from(client.certPem));
  return new grpc.Client(`localhost:${port}`, credentials, { 'grpc.ssl_target_name_override': 'localhost' });
}

function unary(c: grpc.Client, path: string, metadata = new grpc.Metadata()): Promise<{ error: grpc.ServiceError | null; value?: Buffer }> {
  return new Promise((resolve) => {
    c.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, Buffer.from('ping'), metadata, (error, value) => resolve({ error: error ?? null, value }));
  });
}

describe('HTTP/2 and gRPC through the proxy', () => {
  let pki: Pki;
  let upstream: Upstream;
  let proxy: Instance;
  let audit: ReturnType<typeof memoryAuditLog>;
  let configFile: string;
  let client: Issued;
  let session: ClientHttp2Session;
  let agent: Agent;
  let jit: IssuerKey;
  let posture: IssuerKey;

  beforeAll(async () => {
    pki = await createPki();
    upstream = await startUpstream();
    jit = await issuerKey('jit');
    pki.write('jit.json', jit.jwks);
    posture = await issuerKey('posture');
    pki.write('posture.json', posture.jwks);
    pki.write('policy.yaml', 'rules:\n  - { id: feed, effect: allow, subjects: ["spiffe://example.org/ns/prod/sa/web"], actions: [feed.read, demo.call] }\n');
    const started = await startNamed(pki, 'h2.yaml', configYaml(pki, upstream.url, `${ROUTES}grants: { issuers: [{ issuer: "${JIT_ISS}", jwksFile: jit.json }] }\nposture: { issuers: [{ issuer: "${POSTURE_ISS}", jwksFile: posture.json }] }\n`));
    proxy = started.instance;
    audit = started.audit;
    configFile = started.file;
    client = await pki.ca.svid('/ns/prod/sa/web');
    session = await h2client(proxy.proxyPort, pki, client);
    agent = clientAgent(pki.ca.bundlePem, client);
  });
  afterAll(async () => {
    session.close();
    await agent.close();
    await proxy.close();
    await upstream.close();
    pki.cleanup();
  });

  it('offers h2 and http/1.1 by ALPN on one port, with every HTTP/2 limit advertised', async () => {
    expect(session.alpnProtocol).toBe('h2');
    // After one exchange the server's SETTINGS have certainly arrived (before them, nghttp2 assumes 100 streams).
    expect((await h2request(session, { ':method': 'GET', ':path': '/orders/1', ':authority': 'localhost' })).status).toBe(200);
    expect(session.remoteSettings.maxConcurrentStreams).toBe(100);
    expect(session.remoteSettings.maxHeaderListSize).toBe(16_384);
    expect(session.remoteSettings.enablePush).toBe(false);
    const h1 = await get(agent, proxy.proxyPort, '/orders/1');
    expect(h1.status).toBe(200);
  });

  it('forwards an HTTP/2 request to the HTTP/1.1 service with the SPEC header rules: :authority as Host, cookies joined, spoofed identity headers dropped', async () => {
    const answer = await h2request(session, {
      ':method': 'GET',
      ':path': '/orders/./7/?q=1',
      ':authority': 'orders.internal',
      'x-forwarded-client-cert': 'URI=spiffe://example.org/ns/prod/sa/admin',
      'x_forwarded_client_cert': 'URI=spiffe://example.org/ns/prod/sa/admin',
      'x-jit-grant-id': 'forged',
      cookie: 'a=1',
      'x-kept': 'yes',
    });
    expect(answer.status).toBe(200);
    const seen = JSON.parse(answer.body) as { method: string; url: string; headers: Record<string, string> };
    expect(seen.method).toBe('GET');
    expect(seen.url).toBe('/orders/7/?q=1');
    expect(seen.headers.host).toBe('orders.internal');
    expect(seen.headers['x-forwarded-client-cert']).toMatch(/^By=spiffe:\/\/example\.org\/ns\/prod\/sa\/orders-api;Hash=[0-9a-f]{64};URI=spiffe:\/\/example\.org\/ns\/prod\/sa\/web$/);
    expect(seen.headers['x-jit-grant-id']).toBeUndefined();
    expect(seen.headers['x-kept']).toBe('yes');
    expect(seen.headers['x-forwarded-proto']).toBe('https');
    expect(answer.headers['x-request-id']).toBeUndefined(); // the service's answer, relayed as is
  });

  it('joins repeated cookie fields for the HTTP/1.1 service (RFC 9113 8.2.3)', async () => {
    const stream = session.request({ ':method': 'GET', ':path': '/orders/1', ':authority': 'localhost', cookie: ['a=1', 'b=2'] } as unknown as Record<string, string>);
    const body = await new Promise<string>((resolve) => {
      let text = '';
      stream.setEncoding('utf8');
      stream.on('data', (c: string) => (text += c));
      stream.on('end', () => resolve(text));
    });
    expect((JSON.parse(body) as { headers: Record<string, string> }).headers.cookie).toBe('a=1; b=2');
  });

  it('streams a request body from HTTP/2 to the HTTP/1.1 service (chunked when the length is unknown)', async () => {
    const answer = await h2request(session, { ':method': 'POST', ':path': '/orders/upload', ':authority': 'localhost' }, 'x'.repeat(100_000));
    expect(answer.status).toBe(200);
    const seen = JSON.parse(answer.body) as { bytes: number; headers: Record<string, string> };
    expect(seen.bytes).toBe(100_000);
    expect(seen.headers['transfer-encoding']).toBe('chunked');
  });

  it('refuses over HTTP/2 with the same JSON denials: no_route, bad_path, and a bad :scheme', async () => {
    const noRoute = await h2request(session, { ':method': 'GET', ':path': '/nowhere', ':authority': 'localhost' });
    expect(noRoute.status).toBe(403);
    expect(JSON.parse(noRoute.body)).toMatchObject({ reason: 'no_route', request_id: noRoute.headers['x-request-id'] });
    expect(noRoute.headers['content-type']).toBe('application/json');
    for (const path of ['/orders/%2e%2e/%2Fadmin', '/orders/a%2Fb', '//admin', '/orders/x;y']) {
      const bad = await h2request(session, { ':method': 'GET', ':path': path, ':authority': 'localhost' });
      if (path === '//admin') {
        // merged to /admin: normalised, then no route
        expect(bad.status, path).toBe(403);
        continue;
      }
      expect(bad.status, path).toBe(400);
      expect(JSON.parse(bad.body).reason, path).toBe('bad_path');
    }
    const scheme = await h2request(session, { ':method': 'GET', ':path': '/orders/1', ':authority': 'localhost', ':scheme': 'http' });
    expect(scheme.status).toBe(400);
    expect(JSON.parse(scheme.body).reason).toBe('bad_request');
  });

  it('curl --http2: an allowed call and a denied one', async () => {
    const files = { ca: pki.write('ca.pem', pki.ca.bundlePem), cert: pki.write('web.pem', client.certPem), key: pki.write('web_key.pem', client.keyPem) };
    const curl = (path: string) => run('curl', ['-sS', '--http2', '--cacert', files.ca, '--cert', files.cert, '--key', files.key, '-w', '\n%{http_version} %{http_code}', `https://localhost:${proxy.proxyPort}${path}`]);
    const allowed = await curl('/orders/3');
    expect(allowed.stdout.trim().split('\n').at(-1)).toBe('2 200');
    const denied = await curl('/nowhere');
    expect(denied.stdout.trim().split('\n').at(-1)).toBe('2 403');
    expect(denied.stdout).toContain('"reason":"no_route"');
  });

  it('a gRPC call: refused gRPC-style (Trailers-Only, mapped grpc-status, the reason in grpc-message) and 14 to an HTTP/1.1 service', async () => {
    const c = grpcClient(proxy.proxyPort, pki, client);
    try {
      const noRoute = await unary(c, '/demo.v1.Nowhere/Call');
      expect(noRoute.error?.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(noRoute.error?.details).toBe('no_route');
      const noGrant = await unary(c, '/demo.v1.Guarded/Call');
      expect(noGrant.error?.code).toBe(grpc.status.UNAUTHENTICATED);
      expect(noGrant.error?.details).toBe('grant_required');
      expect(noGrant.error?.metadata.get('x-request-id')[0]).toMatch(/^[0-9a-f-]{36}$/);
      const metadata = new grpc.Metadata();
      metadata.set('x-jit-grant', 'not-a-token');
      const badGrant = await unary(c, '/demo.v1.Guarded/Call', metadata);
      expect(badGrant.error?.code).toBe(grpc.status.UNAUTHENTICATED);
      expect(badGrant.error?.details).toBe('grant_invalid');
      const http1Upstream = await unary(c, '/demo.v1.Demo/Call');
      expect(http1Upstream.error?.code).toBe(grpc.status.UNAVAILABLE);
      expect(http1Upstream.error?.details).toBe('upstream_unavailable');
    } finally {
      c.close();
    }
    expect(await metric(proxy, 'portcullis_requests_total', { route: 'grpc-guarded', protocol: 'grpc', code: '16' })).toBe(2);
    expect(await metric(proxy, 'portcullis_requests_total', { route: 'none', protocol: 'grpc', code: '7' })).toBe(1);
  });

  describe('every exchange ends with its grounds', () => {
    const grant = (jti: string, expInMs: number) => {
      const now = Date.now();
      return signToken(grantClaims({ sub: 'spiffe://example.org/ns/prod/sa/web', scope: 'feed.read', jti, iat: Math.floor(now / 1000) - 1, exp: (now + expInMs) / 1000 }), { key: jit.key, kid: 'jit' });
    };
    const streamingUpstream = () => {
      upstream.handler = (req, res) => {
        if (req.url !== '/feed') {
          res.end('{}');
          return;
        }
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const tick = setInterval(() => res.write('data: tick\n\n'), 50);
        res.on('close', () => clearInterval(tick));
      };
    };

    it('an HTTP/1.1 server-sent-events response is cut at the grant exp, without its final chunk, and the service side is aborted', async () => {
      streamingUpstream();
      const jti = 'sse-exp';
      const expMs = Date.now() + 1500;
      const token = await grant(jti, expMs - Date.now());
      const serviceClosed = new Promise<number>((resolve) => {
        const previous = upstream.handler;
        upstream.handler = (req, res) => {
          res.on('close', () => resolve(Date.now()));
          previous(req, res);
        };
      });
      const { rawSession } = await import('../support/raw-tls.ts');
      const raw = await rawSession(proxy.proxyPort, pki.ca.bundlePem, client);
      raw.socket.write(`GET /feed HTTP/1.1\r\nHost: localhost\r\nx-jit-grant: ${token}\r\n\r\n`);
      const closedAt = await raw.closed;
      expect(raw.text()).toMatch(/^HTTP\/1\.1 200 /);
      expect(raw.text()).toContain('data: tick');
      expect(raw.text()).not.toContain('\r\n0\r\n\r\n'); // no final chunk: the client knows it was cut
      expect(closedAt).toBeGreaterThanOrEqual(expMs);
      process.stdout.write(`cut lateness: HTTP/1.1 SSE at grant exp ${closedAt - expMs} ms\n`);
      expect(closedAt - expMs).toBeLessThan(250);
      expect((await serviceClosed) - expMs).toBeLessThan(250);
      await until(() => audit.events.some((e) => e.reason === 'grant_expired' && e.grant_jti === jti));
      expect(audit.events.find((e) => e.grant_jti === jti)).toMatchObject({ event: 'stream_cut', reason: 'grant_expired', route: 'feed', protocol: 'http1' });
    });

    it('an HTTP/1.1 server-sent-events response is cut at revocation', async () => {
      streamingUpstream();
      const token = await grant('sse-revoked', 60_000);
      const { rawSession } = await import('../support/raw-tls.ts');
      const raw = await rawSession(proxy.proxyPort, pki.ca.bundlePem, client);
      raw.socket.write(`GET /feed HTTP/1.1\r\nHost: localhost\r\nx-jit-grant: ${token}\r\n\r\n`);
      await until(() => raw.text().includes('data: tick'));
      const revokedAt = Date.now();
      await admin(proxy, 'POST', '/admin/revoke', { jti: 'sse-revoked' });
      const closedAt = await raw.closed;
      process.stdout.write(`cut lateness: HTTP/1.1 SSE at revocation ${closedAt - revokedAt} ms\n`);
      expect(closedAt - revokedAt).toBeLessThan(250);
      expect(raw.text()).not.toContain('\r\n0\r\n\r\n');
    });

    it('an HTTP/2 stream is reset at the grant exp', async () => {
      streamingUpstream();
      const expMs = Date.now() + 1200;
      const token = await grant('h2-exp', expMs - Date.now());
      const stream = session.request({ ':method': 'GET', ':path': '/feed', ':authority': 'localhost', 'x-jit-grant': token });
      let received = 0;
      stream.on('data', (chunk: Buffer) => (received += chunk.length));
      const closed = await new Promise<{ at: number; code: number }>((resolve) => stream.on('close', () => resolve({ at: Date.now(), code: stream.rstCode ?? -1 })));
      expect(received).toBeGreaterThan(0);
      expect(closed.code).toBe(constants.NGHTTP2_CANCEL);
      process.stdout.write(`cut lateness: HTTP/2 stream at grant exp ${closed.at - expMs} ms\n`);
      expect(closed.at - expMs).toBeGreaterThanOrEqual(0);
      expect(closed.at - expMs).toBeLessThan(250);
    });

    it('a stream admitted with a posture assertion is cut when the assertion expires first (posture_stale)', async () => {
      streamingUpstream();
      const now = Date.now();
      const expMs = now + 1200;
      const token = await grant('posture-exp', 60_000);
      const assertion = await signToken({ iss: POSTURE_ISS, sub: 'spiffe://example.org/ns/prod/sa/web', iat: Math.floor(now / 1000) - 1, exp: expMs / 1000, posture: { trust: 'high' } }, { key: posture.key, kid: 'posture' });
      const stream = session.request({ ':method': 'GET', ':path': '/feed', ':authority': 'localhost', 'x-jit-grant': token, 'x-device-posture': assertion });
      stream.on('data', () => undefined);
      const closedAt = await new Promise<number>((resolve) => stream.on('close', () => resolve(Date.now())));
      process.stdout.write(`cut lateness: HTTP/2 stream at posture exp ${closedAt - expMs} ms\n`);
      expect(closedAt - expMs).toBeGreaterThanOrEqual(0);
      expect(closedAt - expMs).toBeLessThan(250);
      await until(() => audit.events.some((e) => e.grant_jti === 'posture-exp'));
      expect(audit.events.find((e) => e.grant_jti === 'posture-exp')).toMatchObject({ reason: 'posture_stale', protocol: 'h2' });
    });

    it('a revocation cuts only the streams it names, at once, and counts them', async () => {
      streamingUpstream();
      const open = async (jti: string) => {
        const token = await grant(jti, 60_000);
        const stream = session.request({ ':method': 'GET', ':path': '/feed', ':authority': 'localhost', 'x-jit-grant': token });
        stream.on('data', () => undefined);
        await new Promise((resolve) => stream.once('response', resolve));
        return stream;
      };
      const doomed = await open('revoke-me');
      const kept = await open('keep-me');
      const closed = new Promise<number>((resolve) => doomed.on('close', () => resolve(Date.now())));
      const before = await metric(proxy, 'portcullis_streams_cut_total', { reason: 'grant_revoked' });
      const revokedAt = Date.now();
      const answer = await admin(proxy, 'POST', '/admin/revoke', { jti: 'revoke-me' });
      expect(answer.json.closed_tunnels).toBe(1);
      const at = await closed;
      process.stdout.write(`cut lateness: HTTP/2 stream at revocation ${at - revokedAt} ms\n`);
      expect(at - revokedAt).toBeLessThan(250);
      expect(doomed.rstCode).toBe(constants.NGHTTP2_CANCEL);
      await sleep(200);
      expect(kept.closed).toBe(false);
      kept.close();
      expect(await metric(proxy, 'portcullis_streams_cut_total', { reason: 'grant_revoked' })).toBe(before + 1);
    });
  });

  it('after a reload, the new identity.allow applies to the next request of an open connection', async () => {
    const before = await h2request(session, { ':method': 'GET', ':path': '/orders/1', ':authority': 'localhost' });
    expect(before.status).toBe(200);
    const h1before = await get(agent, proxy.proxyPort, '/orders/1');
    expect(h1before.status).toBe(200);
    const { readFileSync, writeFileSync } = await import('node:fs');
    const original = readFileSync(configFile, 'utf8');
    writeFileSync(configFile, original.replace('allow: ["spiffe://example.org/ns/prod/**"]', 'allow: ["spiffe://example.org/ns/prod/sa/someone-else"]'));
    try {
      expect((await admin(proxy, 'POST', '/admin/reload')).status).toBe(200);
      const after = await h2request(session, { ':method': 'GET', ':path': '/orders/1', ':authority': 'localhost' });
      expect(after.status).toBe(403);
      expect(JSON.parse(after.body).reason).toBe('peer_not_allowed');
      const h1after = await get(agent, proxy.proxyPort, '/orders/1');
      expect(h1after.status).toBe(403);
    } finally {
      writeFileSync(configFile, original);
      expect((await admin(proxy, 'POST', '/admin/reload')).status).toBe(200);
    }
  });
});

describe('the connection ends with the peer certificate', () => {
  it('a keep-alive connection is closed when the client SVID expires (HTTP/1.1 and HTTP/2)', async () => {
    const pki = await createPki();
    const upstream = await startUpstream();
    const { instance } = await startNamed(pki, 'svid.yaml', configYaml(pki, upstream.url, 'routes:\n  - { name: all, match: { path: "/**" }, privileged: false }\n'));
    try {
      const notAfter = new Date(Math.ceil((Date.now() + 2500) / 1000) * 1000);
      const shortLived = await pki.ca.svid('/ns/prod/sa/brief', { notAfter });
      const agent = clientAgent(pki.ca.bundlePem, shortLived);
      const session = await h2client(instance.proxyPort, pki, shortLived);
      expect((await get(agent, instance.proxyPort, '/x')).status).toBe(200);
      expect((await h2request(session, { ':method': 'GET', ':path': '/x', ':authority': 'localhost' })).status).toBe(200);
      const h2closed = new Promise<number>((resolve) => session.once('close', () => resolve(Date.now())));
      const at = await h2closed;
      // X.509 notAfter has one-second precision; the connection ends at it, not at the next request.
      expect(at).toBeGreaterThanOrEqual(notAfter.getTime());
      expect(at - notAfter.getTime()).toBeLessThan(250);
      await agent.close();
    } finally {
      await instance.close();
      await upstream.close();
      pki.cleanup();
    }
  });
});

async function until(test: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!test() && Date.now() < deadline) await sleep(10);
}
