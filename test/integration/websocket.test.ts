// WebSocket (HTTP Upgrade) through the proxy: admitted like any request (identity, path, route,
// decision), forwarded with the SPEC identity headers and without spoofed ones, then tunnelled.
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { configYaml, createPki, DevCa, startProxy, type Issued, type Pki } from '../support/harness.ts';
import type { Instance } from '../../src/cli/instance.ts';
import { grantClaims, issuerKey, JIT_ISS, signToken, type IssuerKey } from './decision-support.ts';
import { parseRaw, rawRequest, rawSession } from '../support/raw-tls.ts';

const ROUTES = `routes:
  - name: live
    match: { methods: [GET, HEAD], path: "/live/**" }
    privileged: false
  - name: admin-feed
    match: { methods: [GET], path: /admin-feed }
    action: feed.read
    resource: feed
    sensitivity: low
`;

function open(url: string, ca: string, client: Issued, headers: Record<string, string> = {}): Promise<{ socket?: WebSocket; status?: number; body?: string; error?: Error }> {
  return new Promise((resolve) => {
    // ws passes TLS options through to tls.connect; its types list only some of them.
    const tlsOptions = { ca, cert: client.certPem, key: client.keyPem, servername: 'localhost', headers };
    const socket = new WebSocket(url, tlsOptions as WebSocket.ClientOptions);
    socket.once('open', () => resolve({ socket }));
    socket.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    socket.once('error', (error) => resolve({ error }));
  });
}

describe('WebSocket through the proxy', () => {
  let pki: Pki;
  let proxy: Instance;
  let client: Issued;
  let jit: IssuerKey;
  const seen: { url: string; headers: IncomingHttpHeaders }[] = [];
  const upstream = createServer((_req, res) => res.end('plain'));
  const wss = new WebSocketServer({ server: upstream });

  beforeAll(async () => {
    wss.on('connection', (socket, req) => {
      seen.push({ url: req.url ?? '', headers: req.headers });
      socket.on('message', (data) => socket.send(`echo:${data.toString()}`));
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    pki = await createPki();
    pki.write('policy.yaml', 'rules:\n  - { id: feed, effect: allow, subjects: ["spiffe://example.org/ns/prod/sa/web"], actions: [feed.read] }\n');
    jit = await issuerKey('jit');
    pki.write('jit.json', jit.jwks);
    const port = (upstream.address() as { port: number }).port;
    proxy = await startProxy(pki, configYaml(pki, `http://127.0.0.1:${port}`, `${ROUTES}grants: { issuers: [{ issuer: "${JIT_ISS}", jwksFile: jit.json }] }\n`));
    client = await pki.ca.svid('/ns/prod/sa/web');
  });
  afterAll(async () => {
    await proxy.close();
    wss.close();
    upstream.closeAllConnections();
    upstream.close();
    pki.cleanup();
  });

  it('tunnels a WebSocket and the service sees who called, on the normalised path', async () => {
    const { socket } = await open(`wss://localhost:${proxy.proxyPort}/live//./feed?x=1`, pki.ca.bundlePem, client, {
      'x-forwarded-client-cert': 'URI=spiffe://example.org/ns/prod/sa/admin',
      x_jit_grant_id: 'forged',
    });
    expect(socket).toBeDefined();
    const reply = new Promise<string>((resolve) => socket!.once('message', (data) => resolve(data.toString())));
    socket!.send('hello');
    expect(await reply).toBe('echo:hello');
    socket!.close();
    const last = seen.at(-1)!;
    expect(last.url).toBe('/live/feed?x=1');
    expect(last.headers['x-forwarded-client-cert']).toMatch(/^By=spiffe:\/\/example\.org\/ns\/prod\/sa\/orders-api;Hash=[0-9a-f]{64};URI=spiffe:\/\/example\.org\/ns\/prod\/sa\/web$/);
    expect(last.headers['x-forwarded-proto']).toBe('https');
    expect(last.headers.x_jit_grant_id).toBeUndefined();
    expect(last.headers.upgrade).toBe('websocket');
    // The service's own status is what the requests metric counts.
    expect(await proxy.metrics.registry.metrics()).toMatch(/^portcullis_requests_total\{route="live",code="101",protocol="http1"\} [1-9]/m);
  });

  it('refuses an upgrade exactly as a request: no route, bad path, privileged without a grant, unknown peer', async () => {
    const before = seen.length;
    const noRoute = await open(`wss://localhost:${proxy.proxyPort}/elsewhere`, pki.ca.bundlePem, client);
    expect([noRoute.status, JSON.parse(noRoute.body!).reason]).toEqual([403, 'no_route']);
    const badPath = await open(`wss://localhost:${proxy.proxyPort}/live/a%2F..%2Fb`, pki.ca.bundlePem, client);
    expect([badPath.status, JSON.parse(badPath.body!).reason]).toEqual([400, 'bad_path']);
    const privileged = await open(`wss://localhost:${proxy.proxyPort}/admin-feed`, pki.ca.bundlePem, await pki.ca.svid('/ns/prod/sa/other'));
    expect([privileged.status, JSON.parse(privileged.body!).reason]).toEqual([403, 'policy_denied']);
    const outsider = await open(`wss://localhost:${proxy.proxyPort}/live/feed`, pki.ca.bundlePem, await pki.ca.svid('/ns/dev/sa/other'));
    expect([outsider.status, JSON.parse(outsider.body!).reason]).toEqual([403, 'peer_not_allowed']);
    const forged = await open(`wss://localhost:${proxy.proxyPort}/live/feed`, pki.ca.bundlePem, await (await DevCa.create('example.org')).svid('/ns/prod/sa/web'));
    expect(forged.error ?? forged.status).toBeDefined();
    expect(forged.socket).toBeUndefined();
    expect(seen.length).toBe(before);
  });

  it('a WebSocket opened on a grant is closed by the proxy when the grant expires', { timeout: 10_000 }, async () => {
    const expMs = Date.now() + 1500;
    const grant = await signToken(grantClaims({ sub: 'spiffe://example.org/ns/prod/sa/web', scope: 'feed.read', iat: Math.floor(Date.now() / 1000), exp: expMs / 1000 }), { key: jit.key, kid: 'jit' });
    const { socket, status, body } = await open(`wss://localhost:${proxy.proxyPort}/admin-feed`, pki.ca.bundlePem, client, { 'x-jit-grant': grant });
    expect(socket, `${status} ${body}`).toBeDefined();
    expect(seen.at(-1)!.headers['x-jit-grant-id']).toBeDefined();
    expect(seen.at(-1)!.headers['x-jit-grant']).toBeUndefined();
    const closedAt = await new Promise<number>((resolve) => socket!.once('close', () => resolve(Date.now())));
    expect(closedAt).toBeGreaterThanOrEqual(expMs);
    process.stdout.write(`cut lateness: WebSocket at grant exp ${closedAt - expMs} ms\n`);
    expect(closedAt - expMs).toBeLessThan(250);
  });

  it('a tunnel on a grant adds no listener past Node\'s leak warning to its client socket (one close listener per part, not one per layer)', { timeout: 10_000 }, async () => {
    // The proxy runs in this process: a MaxListenersExceededWarning it causes is ours to see.
    const warnings: string[] = [];
    const onWarning = (warning: Error): void => void (warning.name === 'MaxListenersExceededWarning' && warnings.push(warning.message));
    process.on('warning', onWarning);
    try {
      const grant = await signToken(grantClaims({ sub: 'spiffe://example.org/ns/prod/sa/web', scope: 'feed.read', iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 60 }), { key: jit.key, kid: 'jit' });
      const { socket, status, body } = await open(`wss://localhost:${proxy.proxyPort}/admin-feed`, pki.ca.bundlePem, client, { 'x-jit-grant': grant });
      expect(socket, `${status} ${body}`).toBeDefined();
      const reply = new Promise<string>((resolve) => socket!.once('message', (data) => resolve(data.toString())));
      socket!.send('hello');
      expect(await reply).toBe('echo:hello');
      const closed = new Promise<void>((resolve) => socket!.once('close', () => resolve()));
      socket!.close();
      await closed;
      // Warnings are emitted on the next tick.
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('a revocation closes tunnels already open on that grant (by jti) or on any grant of that peer (by sub), and no others', { timeout: 10_000 }, async () => {
    const revoke = async (body: Record<string, string>) => {
      const response = await fetch(`http://127.0.0.1:${proxy.adminPort}/admin/revoke`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return (await response.json()) as Record<string, unknown>;
    };
    const longGrant = (jti: string, sub = 'spiffe://example.org/ns/prod/sa/web') =>
      signToken(grantClaims({ sub, scope: 'feed.read', jti, iat: Math.floor(Date.now() / 1000) - 1, exp: Math.floor(Date.now() / 1000) + 120 }), { key: jit.key, kid: 'jit' });
    const openOn = async (grant: string) => {
      const { socket, status, body } = await open(`wss://localhost:${proxy.proxyPort}/admin-feed`, pki.ca.bundlePem, client, { 'x-jit-grant': grant });
      expect(socket, `${status} ${body}`).toBeDefined();
      const closed = new Promise<number>((resolve) => socket!.once('close', () => resolve(Date.now())));
      return { socket: socket!, closed };
    };
    const revokedOne = await openOn(await longGrant('ws-revoke-1'));
    const other = await openOn(await longGrant('ws-revoke-2'));
    const before = Date.now();
    expect(await revoke({ jti: 'ws-revoke-1' })).toMatchObject({ revoked: { jti: 'ws-revoke-1' }, closed_tunnels: 1 });
    const revokedClosedAt = await revokedOne.closed;
    process.stdout.write(`cut lateness: WebSocket at revocation ${revokedClosedAt - before} ms (the admin round trip included)\n`);
    expect(revokedClosedAt - before).toBeLessThan(250);
    // The other grant's tunnel still carries messages.
    const echoed = new Promise<string>((resolve) => other.socket.once('message', (data) => resolve(data.toString())));
    other.socket.send('still here');
    expect(await echoed).toBe('echo:still here');
    // Revoking the peer's grants by sub closes it too.
    expect(await revoke({ sub: 'spiffe://example.org/ns/prod/sa/web' })).toMatchObject({ closed_tunnels: 1 });
    expect((await other.closed) - before).toBeLessThan(2000);
  });

  it('a service that does not switch protocols never reads the client\'s next bytes as a request', async () => {
    // A plain service: it answers the upgrade request like any request (200, keep-alive).
    const seenUrls: string[] = [];
    const plain = createServer((req, res) => {
      seenUrls.push(`${req.url} ${req.headers['x-forwarded-client-cert'] ?? ''}`);
      req.resume();
      res.end('plain answer');
    });
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    const viaPlain = await startProxy(pki, configYaml(pki, `http://127.0.0.1:${(plain.address() as { port: number }).port}`, ROUTES));
    try {
      const session = await rawSession(viaPlain.proxyPort, pki.ca.bundlePem, client);
      session.socket.write('GET /live/x HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
      await new Promise((r) => setTimeout(r, 150));
      session.socket.write('GET /admin/x HTTP/1.1\r\nHost: localhost\r\nx-forwarded-client-cert: By=x;URI=spiffe://example.org/ns/prod/sa/forged-admin\r\n\r\n');
      await session.closedWithin(1000);
      expect(session.text()).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(session.text()).toMatch(/\r\nconnection: close\r\n/i);
      expect(session.text()).toMatch(/plain answer$/);
      expect(seenUrls).toHaveLength(1);
      expect(seenUrls[0]).toMatch(/^\/live\/x By=spiffe:\/\/example\.org\/ns\/prod\/sa\/orders-api;/);
      session.socket.destroy();
    } finally {
      await viaPlain.close();
      plain.closeAllConnections();
      plain.close();
    }
  });

  it('a service answering the upgrade by script: 100 before 101, HEAD, Connection-named headers, silence, pipelining', { timeout: 15_000 }, async () => {
    const { createServer: createTcp } = await import('node:net');
    const sockets = new Set<import('node:net').Socket>();
    const service = createTcp((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
      let text = '';
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1');
        if (!text.includes('\r\n\r\n')) return;
        const target = text.split(' ')[1];
        if (target === '/live/interim') socket.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\nconnection: upgrade\r\n\r\nswitched');
        else if (target === '/live/head') socket.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n');
        else if (target === '/live/named') socket.write('HTTP/1.1 403 Forbidden\r\nconnection: x-secret\r\nx-secret: internal\r\ncontent-length: 2\r\n\r\nno');
        else if (target === '/live/silent') socket.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc');
        else if (target === '/live/interims') socket.write('HTTP/1.1 100 Continue\r\n\r\n'.repeat(17) + 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
        else socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      });
    });
    await new Promise<void>((resolve) => service.listen(0, '127.0.0.1', resolve));
    const scripted = await startProxy(pki, configYaml(pki, `http://127.0.0.1:${(service.address() as { port: number }).port}`, ROUTES).replace('timeout: 2s', 'timeout: 400ms'));
    const exchange = async (request: string, waitMs = 1500) => {
      const session = await rawSession(scripted.proxyPort, pki.ca.bundlePem, client);
      const started = Date.now();
      session.socket.write(request);
      const closed = await session.closedWithin(waitMs);
      session.socket.destroy();
      return { text: session.text(), closedAfter: closed ? (await session.closed) - started : -1 };
    };
    const upgrade = (method: string, path: string) => `${method} ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`;
    try {
      // An interim 100 before the 101 is dropped; the switch still happens.
      const interim = await exchange(upgrade('GET', '/live/interim'), 500);
      expect(interim.text).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n[\s\S]*\r\n\r\nswitched$/);
      // HEAD: the answer has no body, whatever its content-length says; the client is not kept waiting.
      const head = await exchange(upgrade('HEAD', '/live/head'));
      expect(head.text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(head.closedAfter).toBeGreaterThanOrEqual(0);
      // Headers the service's Connection header names are hop-by-hop: not relayed.
      const named = await exchange(upgrade('GET', '/live/named'));
      expect(named.text).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
      expect(named.text).not.toMatch(/x-secret/i);
      expect(named.text).toMatch(/\r\n\r\nno$/);
      // A service that goes silent mid-answer: cut after upstream.timeout of silence.
      const silent = await exchange(upgrade('GET', '/live/silent'), 3000);
      expect(silent.closedAfter).toBeGreaterThanOrEqual(350);
      expect(silent.closedAfter).toBeLessThan(2000);
      // More interim answers than allowed: the service is broken, 502.
      const interims = await exchange(upgrade('GET', '/live/interims'));
      expect(interims.text).toMatch(/^HTTP\/1\.1 502 /);
      // An upgrade pipelined behind a request still being answered: the connection is cut, nothing spliced.
      const pipelined = await exchange('GET /live/plain HTTP/1.1\r\nHost: localhost\r\n\r\n' + upgrade('GET', '/live/interim'));
      expect(pipelined.text).not.toMatch(/101 Switching/);
      expect(pipelined.closedAfter).toBeGreaterThanOrEqual(0);
    } finally {
      await scripted.close();
      for (const socket of sockets) socket.destroy();
      service.close();
    }
  });

  it('a service that answers 101 to a request that asked for no upgrade gets 502 upstream_unavailable: nothing is switched', async () => {
    const { createServer: createTcp } = await import('node:net');
    const heard: string[] = [];
    const service = createTcp((socket) => {
      socket.on('error', () => undefined);
      socket.on('data', (chunk: Buffer) => {
        heard.push(chunk.toString('latin1'));
        socket.write('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\nnot http');
      });
    });
    await new Promise<void>((resolve) => service.listen(0, '127.0.0.1', resolve));
    const switching = await startProxy(pki, configYaml(pki, `http://127.0.0.1:${(service.address() as { port: number }).port}`, ROUTES));
    try {
      const { status, body } = parseRaw(await rawRequest(switching.proxyPort, pki.ca.bundlePem, client, 'GET /live/plain HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n', 2000));
      expect([status, JSON.parse(body).reason]).toEqual([502, 'upstream_unavailable']);
      expect(body).not.toContain('not http');
      expect(heard).toHaveLength(1);
      expect(heard[0]).not.toMatch(/upgrade/i);
    } finally {
      await switching.close();
      service.close();
    }
  });

  it('refuses an upgrade request that carries a body', async () => {
    const raw = await rawRequest(proxy.proxyPort, pki.ca.bundlePem, client, 'GET /live/x HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nhello', 2000);
    const { status, body } = parseRaw(raw);
    expect([status, JSON.parse(body).reason]).toEqual([400, 'bad_request']);
  });

  it('answers 502 upstream_unavailable when the service cannot be reached', async () => {
    const gone = createServer();
    await new Promise<void>((resolve) => gone.listen(0, '127.0.0.1', resolve));
    const port = (gone.address() as { port: number }).port;
    await new Promise<void>((resolve) => gone.close(() => resolve()));
    const down = await startProxy(pki, configYaml(pki, `http://127.0.0.1:${port}`, ROUTES));
    try {
      const result = await open(`wss://localhost:${down.proxyPort}/live/feed`, pki.ca.bundlePem, client);
      expect([result.status, JSON.parse(result.body!).reason]).toEqual([502, 'upstream_unavailable']);
    } finally {
      await down.close();
    }
  });
});
