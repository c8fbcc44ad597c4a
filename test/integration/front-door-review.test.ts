// What an independent attacker and an SRE found at the front door (issue 10): slow heads held
// past limits.headersTimeout, Upgrade tokens tunnelled unjudged, 100 Continue before the
// decision, a `Connection: close` request losing its answer to the bytes after it, admin POSTs a
// browser could drive, and refusals nobody could find by their request id.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { connect as netConnect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { request } from 'undici';
import type { Agent } from 'undici';
import { clientAgent, configYaml, createPki, DEFAULT_ROUTES, get, startUpstream, type Issued, type Pki, type Upstream } from '../support/harness.ts';
import { parseRaw, rawRequest, rawSession } from '../support/raw-tls.ts';
import { loadConfig } from '../../src/config/load.ts';
import { startInstance, type Instance } from '../../src/cli/instance.ts';
import { memoryAuditLog } from '../../src/telemetry/audit.ts';
import type { Logger } from '../../src/telemetry/logger.ts';

/** A pino logger whose JSON lines a test can read. */
function capturingLogger(): { logger: Logger; lines: () => Record<string, unknown>[] } {
  const text: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text.push(chunk.toString('utf8'));
      done();
    },
  });
  const logger = pino({ level: 'info', base: undefined }, stream) as unknown as Logger;
  return {
    logger,
    lines: () =>
      text
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

const until = async (test: () => boolean, ms = 3000): Promise<void> => {
  const deadline = Date.now() + ms;
  while (!test() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
};

describe('front door, after review', () => {
  let pki: Pki;
  let upstream: Upstream;
  let proxy: Instance;
  let client: Issued;
  let outsider: Issued;
  let agent: Agent;
  let logs: ReturnType<typeof capturingLogger>;
  let logDir: string;
  let accessLogFile: string;
  /** Upgrade requests the service saw, by their Upgrade header. */
  const upgradesSeen: string[] = [];

  beforeAll(async () => {
    pki = await createPki();
    upstream = await startUpstream();
    // A service that switches to any protocol it is asked for: only the proxy can stop `foo`.
    upstream.server.on('upgrade', (req, socket) => {
      upgradesSeen.push(String(req.headers.upgrade));
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: ${req.headers.upgrade}\r\n\r\n`);
      socket.on('data', (chunk: Buffer) => socket.write(chunk));
      // Upgraded sockets are half-open: end ours when the proxy ends its side.
      socket.on('end', () => socket.end());
    });
    logDir = mkdtempSync(join(tmpdir(), 'portcullis-access-'));
    accessLogFile = join(logDir, 'access.log');
    logs = capturingLogger();
    const yaml = configYaml(pki, upstream.url, `${DEFAULT_ROUTES}limits: { headersTimeout: 2s }\naccessLog: { file: ${JSON.stringify(accessLogFile)} }\n`).replace('allow: ["spiffe://example.org/ns/prod/**"]', 'allow: ["spiffe://example.org/ns/prod/**"]');
    const file = pki.write('portcullis.yaml', yaml);
    proxy = await startInstance(loadConfig(file), { logger: logs.logger, svidPollMs: 100, configFile: file, audit: memoryAuditLog() });
    client = await pki.ca.svid('/ns/prod/sa/web');
    outsider = await pki.ca.svid('/ns/dev/sa/scraper');
    agent = clientAgent(pki.ca.bundlePem, client);
  });
  afterAll(async () => {
    await agent.close();
    await proxy.close();
    await upstream.close();
    pki.cleanup();
    rmSync(logDir, { recursive: true, force: true });
  });

  it('closes connections that trickle their head past limits.headersTimeout, within a second of it', async () => {
    const sessions = await Promise.all(Array.from({ length: 40 }, () => rawSession(proxy.proxyPort, pki.ca.bundlePem, client)));
    const started = Date.now();
    const head = 'GET /orders/1 HTTP/1.1\r\nHost: localhost\r\nX-Slow: ';
    let at = 0;
    const trickle = setInterval(() => {
      for (const s of sessions) if (!s.socket.destroyed) s.socket.write(head[at % head.length]!);
      at++;
    }, 250);
    try {
      const closedAt = await Promise.all(sessions.map((s) => Promise.race([s.closed, new Promise<number>((resolve) => setTimeout(() => resolve(Infinity), 6000))])));
      const latest = Math.max(...closedAt) - started;
      // 2 s allowed, checked often enough that none outlives it by more than a second (Node's own
      // check runs every 30 s by default: connectionsCheckingInterval).
      expect(latest).toBeLessThan(3000);
      expect(latest).toBeGreaterThanOrEqual(1900);
    } finally {
      clearInterval(trickle);
      for (const s of sessions) s.socket.destroy();
    }
  });

  it('tunnels only the Upgrade tokens in routing.upgrades: any other, and h2c always, is 400 bad_request and never reaches the service', async () => {
    for (const token of ['foo', 'h2c', 'websocket, foo', 'foo/1, websocket']) {
      const raw = await rawRequest(proxy.proxyPort, pki.ca.bundlePem, client, `GET /orders/1 HTTP/1.1\r\nHost: localhost\r\nConnection: upgrade\r\nUpgrade: ${token}\r\n\r\nGET /orders/2 HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-Client-Cert: URI=spiffe://example.org/ns/prod/sa/admin\r\n\r\n`, 2000);
      const { status, body } = parseRaw(raw);
      expect(status, token).toBe(400);
      expect(JSON.parse(body)).toMatchObject({ reason: 'bad_request' });
    }
    expect(upgradesSeen).toEqual([]);
    // websocket (the default list) still switches.
    const session = await rawSession(proxy.proxyPort, pki.ca.bundlePem, client);
    session.socket.write('GET /orders/1 HTTP/1.1\r\nHost: localhost\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n');
    await until(() => session.text().includes('101 Switching Protocols'));
    expect(session.text()).toContain('101 Switching Protocols');
    expect(upgradesSeen).toEqual(['websocket']);
    session.socket.destroy();
  });

  it('answers Expect: 100-continue only after the decision: a refused request gets its refusal, never 100 Continue', async () => {
    const refused = await rawRequest(proxy.proxyPort, pki.ca.bundlePem, outsider, 'POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n', 1500);
    expect(refused).not.toContain('100 Continue');
    expect(parseRaw(refused).status).toBe(403);
    const noRoute = await rawRequest(proxy.proxyPort, pki.ca.bundlePem, client, 'POST /nowhere HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n', 1500);
    expect(noRoute).not.toContain('100 Continue');
    expect(parseRaw(noRoute).status).toBe(403);
    // An allowed one is invited, then forwarded with its body (and no Expect: answered here).
    const session = await rawSession(proxy.proxyPort, pki.ca.bundlePem, client);
    session.socket.write('POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n');
    await until(() => session.text().includes('100 Continue'));
    expect(session.text()).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\n/);
    session.socket.write('hello');
    await session.closedWithin(3000);
    const final = session.text().slice(session.text().indexOf('\r\n\r\n') + 4);
    const seen = JSON.parse(parseRaw(final).body) as { bytes: number; headers: Record<string, string> };
    expect(seen.bytes).toBe(5);
    expect(seen.headers.expect).toBeUndefined();
  });

  it('answers a Connection: close request even when more bytes follow it, and lets none of them reach the service (RFC 9112 9.6)', async () => {
    const before = upstream.received.length;
    for (const after of ['GET /orders/2 HTTP/1.1\r\nHost: localhost\r\n\r\n', 'garbage that is no request\r\n\r\n', 'G']) {
      const raw = await rawRequest(proxy.proxyPort, pki.ca.bundlePem, client, `GET /orders/1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n${after}`, 2000);
      expect(raw.startsWith('HTTP/1.1 200 '), JSON.stringify(after)).toBe(true);
      expect(raw.match(/HTTP\/1\.1 /g)?.length, JSON.stringify(after)).toBe(1);
      expect(parseRaw(raw).headers.toLowerCase()).toContain('connection: close');
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(upstream.received.slice(before).map((r) => r.url)).toEqual(['/orders/1', '/orders/1', '/orders/1']);
  });

  describe('admin POSTs no browser can drive (CSRF, DNS rebinding)', () => {
    const post = (path: string, headers: Record<string, string>, body = '{}') =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const socket = netConnect(proxy.adminPort, '127.0.0.1', () => {
          const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
          socket.write(`POST ${path} HTTP/1.1\r\n${lines}content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
        });
        let data = '';
        socket.on('data', (chunk: Buffer) => (data += chunk.toString()));
        socket.on('end', () => resolve({ status: Number(data.split(' ')[1]), body: data.slice(data.indexOf('\r\n\r\n') + 4) }));
        socket.on('error', reject);
      });

    it('refuses a POST without Content-Type: application/json (415), with a foreign Host (403), or with any Origin (403)', async () => {
      const host = `127.0.0.1:${proxy.adminPort}`;
      const json = 'application/json';
      expect((await post('/admin/cache/flush', { host, 'content-type': 'text/plain' })).status).toBe(415);
      expect((await post('/admin/cache/flush', { host })).status).toBe(415);
      expect((await post('/admin/cache/flush', { host: `attacker.example:${proxy.adminPort}`, 'content-type': json })).status).toBe(403);
      // No Host at all: refused too (Node's own 400 for HTTP/1.1 without Host).
      expect([400, 403]).toContain((await post('/admin/cache/flush', { 'content-type': json })).status);
      expect((await post('/admin/cache/flush', { host, 'content-type': json, origin: 'http://127.0.0.1:8000' })).status).toBe(403);
      expect((await post('/admin/cache/flush', { host, 'content-type': json, origin: 'null' })).status).toBe(403);
      const refused = await post('/admin/revoke', { host, 'content-type': 'text/plain' }, '{"jti":"x"}');
      expect(JSON.parse(refused.body)).toMatchObject({ error: expect.stringContaining('application/json') });
      // The honest forms: the admin address, or localhost, with the JSON content type (charset allowed).
      expect((await post('/admin/cache/flush', { host, 'content-type': json })).status).toBe(200);
      expect((await post('/admin/cache/flush', { host: `localhost:${proxy.adminPort}`, 'content-type': 'application/json; charset=utf-8' })).status).toBe(200);
      expect((await post('/admin/cache/flush', { host: 'localhost', 'content-type': json })).status).toBe(200);
    });
  });

  it('logs every refusal outside the audit log at info with its request id, peer, route, status and reason', async () => {
    const denied = await get(clientAgent(pki.ca.bundlePem, outsider), proxy.proxyPort, '/orders/1', { headers: { 'x-request-id': 'find-me-peer' } });
    expect(denied.status).toBe(403);
    const noRoute = await get(agent, proxy.proxyPort, '/nowhere', { headers: { 'x-request-id': 'find-me-route' } });
    expect(noRoute.status).toBe(403);
    const badPath = await rawRequest(proxy.proxyPort, pki.ca.bundlePem, client, 'GET /orders/%2e%2e/%2Fadmin HTTP/1.1\r\nHost: localhost\r\nx-request-id: find-me-path\r\nConnection: close\r\n\r\n');
    expect(parseRaw(badPath).status).toBe(400);
    await until(() => logs.lines().filter((l) => l.msg === 'request refused').length >= 3);
    const refusals = logs.lines().filter((l) => l.msg === 'request refused');
    expect(refusals.find((l) => l.request_id === 'find-me-peer')).toMatchObject({ peer: 'spiffe://example.org/ns/dev/sa/scraper', route: 'none', status: 403, reason: 'peer_not_allowed' });
    expect(refusals.find((l) => l.request_id === 'find-me-route')).toMatchObject({ peer: 'spiffe://example.org/ns/prod/sa/web', route: 'none', status: 403, reason: 'no_route' });
    expect(refusals.find((l) => l.request_id === 'find-me-path')).toMatchObject({ status: 400, reason: 'bad_path' });
    // At info, whichever way the logger spells its levels.
    for (const id of ['find-me-peer', 'find-me-route', 'find-me-path']) expect([30, 'info']).toContain(refusals.find((l) => l.request_id === id)!.level);
  });

  it('logs readiness as it changes: ready once at start', () => {
    const changes = logs.lines().filter((l) => typeof l.msg === 'string' && (l.msg as string).startsWith('readiness changed'));
    expect(changes).toEqual([expect.objectContaining({ ready: true, msg: 'readiness changed: ready' })]);
  });

  it('writes one access-log line per request, refusals included, with the normalised path and no query', async () => {
    const ok = await get(agent, proxy.proxyPort, '/orders/./7/?secret=token-in-query', { headers: { 'x-request-id': 'access-ok' } });
    expect(ok.status).toBe(200);
    const refused = await get(agent, proxy.proxyPort, '/nowhere', { headers: { 'x-request-id': 'access-refused' } });
    expect(refused.status).toBe(403);
    const read = () =>
      readFileSync(accessLogFile, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>);
    await until(() => {
      try {
        return read().some((l) => l.request_id === 'access-refused');
      } catch {
        return false;
      }
    });
    const lines = read();
    const line = lines.find((l) => l.request_id === 'access-ok')!;
    expect(line).toMatchObject({ peer: 'spiffe://example.org/ns/prod/sa/web', method: 'GET', path: '/orders/7/', route: 'orders', status: 200, reason: 'allowed', protocol: 'http1' });
    expect(typeof line.time).toBe('string');
    expect(new Date(line.time as string).toISOString()).toBe(line.time);
    expect(line.bytes as number).toBeGreaterThan(0);
    expect(line.duration_ms as number).toBeGreaterThanOrEqual(0);
    expect(JSON.stringify(lines)).not.toContain('token-in-query');
    expect(lines.find((l) => l.request_id === 'access-refused')).toMatchObject({ route: 'none', status: 403, reason: 'no_route', path: '/nowhere' });
  });

  it('an undici request with a body still works (no Expect involved)', async () => {
    const response = await request(`https://localhost:${proxy.proxyPort}/upload`, { dispatcher: agent, method: 'POST', body: 'abc' });
    expect(response.statusCode).toBe(200);
    expect((JSON.parse(await response.body.text()) as { bytes: number }).bytes).toBe(3);
  });
});
