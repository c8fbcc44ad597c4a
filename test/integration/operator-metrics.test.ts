// The operator's metrics (SPEC "Metrics", issue 10 §5) on a live scrape of a real proxy over
// HTTP: `promtool check metrics` finds nothing to complain about, and build info, reloads,
// connections, requests in flight, tunnels, the PDP circuit and JWKS fetches say what happened.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request, type Agent } from 'undici';
import { clientAgent, configYaml, createPki, DEFAULT_ROUTES, get, startUpstream, type Pki, type Upstream } from '../support/harness.ts';
import { rawSession } from '../support/raw-tls.ts';
import { admin, grantClaims, issuerKey, JIT_ISS, sample, signToken, sleep, startNamed, type IssuerKey } from './decision-support.ts';
import type { Instance } from '../../src/cli/instance.ts';

const PROMTOOL = spawnSync('promtool', ['--version']).error === undefined;
const PACKAGE_VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const OK_ISS = 'https://jwks-ok.example.org';
const BROKEN_ISS = 'https://jwks-500.example.org';
const SLOW_ISS = 'https://jwks-slow.example.org';

/** A JWKS endpoint: `ok` serves the key set, `500` fails, `hang` never answers (jose times out). */
async function jwksEndpoint(mode: 'ok' | '500' | 'hang', jwks: string): Promise<{ url: string; server: Server }> {
  const server = createServer((_req, res) => {
    if (mode === 'hang') return;
    res.writeHead(mode === 'ok' ? 200 : 500, { 'content-type': 'application/json' });
    res.end(mode === 'ok' ? jwks : '{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/jwks.json`, server };
}

async function scrape(instance: Instance): Promise<string> {
  const response = await request(`http://127.0.0.1:${instance.adminPort}/metrics`);
  expect(response.statusCode).toBe(200);
  return response.body.text();
}

/** Polls the scrape until `sample` reaches `value` (gauges follow 'close' events). */
async function until(instance: Instance, name: string, value: number): Promise<number> {
  let seen = NaN;
  for (let i = 0; i < 100; i++) {
    seen = sample(await scrape(instance), name);
    if (seen === value) return seen;
    await sleep(20);
  }
  return seen;
}

describe('operator metrics on a live scrape', () => {
  let pki: Pki;
  let upstream: Upstream;
  let instance: Instance;
  let file: string;
  let key: IssuerKey;
  let agent: Agent;
  const jwksServers: Server[] = [];
  const held: (() => void)[] = [];
  /** Upgraded sockets leave the HTTP server's tracking: closed here. */
  const switched = new Set<Socket>();

  beforeAll(async () => {
    pki = await createPki();
    upstream = await startUpstream();
    // The service holds /orders/slow until the test lets it go, and switches any upgrade.
    const echo = upstream.handler;
    upstream.handler = (req, res) => {
      if (req.url === '/orders/slow') held.push(() => res.end('late'));
      else echo(req, res);
    };
    upstream.server.on('upgrade', (_req, socket: Socket) => {
      switched.add(socket);
      socket.on('error', () => undefined);
      socket.write('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n');
    });
    key = await issuerKey('k');
    const endpoints = await Promise.all((['ok', '500', 'hang'] as const).map((mode) => jwksEndpoint(mode, key.jwks)));
    jwksServers.push(...endpoints.map((e) => e.server));
    pki.write('jit.json', key.jwks);
    pki.write('policy.yaml', 'rules:\n  - { id: r, effect: allow, subjects: ["spiffe://example.org/**"], actions: [orders.refund], resources: ["order:*"] }\n');
    const issuers = [
      `{ issuer: "${JIT_ISS}", jwksFile: jit.json }`,
      `{ issuer: "${OK_ISS}", jwksUrl: "${endpoints[0]!.url}" }`,
      `{ issuer: "${BROKEN_ISS}", jwksUrl: "${endpoints[1]!.url}" }`,
      `{ issuer: "${SLOW_ISS}", jwksUrl: "${endpoints[2]!.url}" }`,
    ];
    ({ instance, file } = await startNamed(pki, 'operator-metrics.yaml', configYaml(pki, upstream.url, DEFAULT_ROUTES) + `grants: { issuers: [${issuers.join(', ')}] }\ncache: { maxEntries: 0 }\n`));
    agent = clientAgent(pki.ca.bundlePem, await pki.ca.svid('/ns/prod/sa/web'));
  });
  afterAll(async () => {
    for (const release of held) release();
    for (const socket of switched) socket.destroy();
    await agent.close();
    await instance.close();
    await upstream.close();
    for (const server of jwksServers) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    pki.cleanup();
  });

  const refund = async (iss: string) => {
    const token = await signToken(grantClaims({ iss, sub: 'spiffe://example.org/ns/prod/sa/web' }), { key: key.key, kid: 'k' });
    return get(agent, instance.proxyPort, '/orders/1/refund', { method: 'POST', headers: { 'x-jit-grant': token } });
  };

  it.skipIf(!PROMTOOL)('`promtool check metrics` passes a scrape taken after real traffic, refusals and reloads', async () => {
    expect((await get(agent, instance.proxyPort, '/orders/1')).status).toBe(200);
    expect((await get(agent, instance.proxyPort, '/nothing/here')).status).toBe(403);
    expect((await refund(JIT_ISS)).status).toBe(200);
    expect((await admin(instance, 'POST', '/admin/reload', {})).status).toBe(200);
    const text = await scrape(instance);
    expect(text).toContain('portcullis_decision_duration_seconds_bucket');
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(check.stdout + check.stderr).toBe('');
    expect(check.status).toBe(0);
    // prom-client's gauges misnamed *_total are gone; the per-type gauges they summed remain.
    expect(text).not.toMatch(/^nodejs_active_(handles|requests|resources)_total/m);
    expect(text).toMatch(/^# TYPE nodejs_active_handles gauge$/m);
  });

  it.runIf(!PROMTOOL)('is skipped: promtool is not installed (Debian/Ubuntu: apt-get install prometheus)', () => {
    expect(PROMTOOL).toBe(false);
  });

  it("says which version runs: portcullis_build_info{version} is package.json's, value 1", async () => {
    const text = await scrape(instance);
    expect(text).toMatch(/^# TYPE portcullis_build_info gauge$/m);
    expect(sample(text, 'portcullis_build_info', { version: PACKAGE_VERSION })).toBe(1);
    expect(text.match(/^portcullis_build_info\{/gm)).toHaveLength(1);
  });

  it('counts client connections while a keep-alive client is connected, and none once it leaves', async () => {
    const other = clientAgent(pki.ca.bundlePem, await pki.ca.svid('/ns/prod/sa/other'));
    expect((await get(other, instance.proxyPort, '/orders/2')).status).toBe(200);
    const open = sample(await scrape(instance), 'portcullis_active_connections');
    expect(open).toBeGreaterThanOrEqual(1);
    await other.close();
    expect(await until(instance, 'portcullis_active_connections', open - 1)).toBe(open - 1);
    // A peer refused right after the handshake (a certificate of another trust domain's CA) is
    // counted and uncounted like any other connection.
    const otherPki = await createPki('other.org');
    try {
      const stranger = await otherPki.ca.svid('/ns/prod/sa/web');
      const refused = connect({ port: instance.proxyPort, host: '127.0.0.1', servername: 'localhost', ca: pki.ca.bundlePem, cert: stranger.certPem, key: stranger.keyPem });
      refused.on('error', () => undefined);
      await new Promise((resolve) => refused.once('close', resolve));
    } finally {
      otherPki.cleanup();
    }
    expect(await until(instance, 'portcullis_active_connections', open - 1)).toBe(open - 1);
  });

  it('counts a request in flight until its response finishes; refused requests leave none behind', async () => {
    expect(await until(instance, 'portcullis_requests_in_flight', 0)).toBe(0);
    const slow = get(agent, instance.proxyPort, '/orders/slow');
    for (let i = 0; i < 100 && held.length === 0; i++) await sleep(10);
    expect(held).toHaveLength(1);
    expect(sample(await scrape(instance), 'portcullis_requests_in_flight')).toBe(1);
    held.shift()!();
    expect((await slow).text).toBe('late');
    // Refusals before routing, without a route, and at the decision all end their count too.
    const refusals = clientAgent(pki.ca.bundlePem, await pki.ca.svid('/ns/prod/sa/web'));
    expect((await get(refusals, instance.proxyPort, '/nothing/here')).status).toBe(403);
    expect((await get(refusals, instance.proxyPort, '/orders/1/refund', { method: 'POST', headers: { 'x-jit-grant': 'garbage' } })).status).toBe(401);
    expect((await get(refusals, instance.proxyPort, '/orders/a%2fb')).status).toBe(400);
    await refusals.close();
    expect(await until(instance, 'portcullis_requests_in_flight', 0)).toBe(0);
  });

  it('counts an open tunnel from the 101 until the client side closes', async () => {
    const session = await rawSession(instance.proxyPort, pki.ca.bundlePem, await pki.ca.svid('/ns/prod/sa/web'));
    session.socket.write('GET /orders/ws HTTP/1.1\r\nhost: localhost\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n');
    for (let i = 0; i < 100 && !session.text().includes('\r\n\r\n'); i++) await sleep(10);
    expect(session.text()).toMatch(/^HTTP\/1\.1 101 /);
    expect(sample(await scrape(instance), 'portcullis_open_tunnels')).toBe(1);
    session.socket.destroy();
    expect(await until(instance, 'portcullis_open_tunnels', 0)).toBe(0);
  });

  it('counts reloads by result and keeps the time of the last good one', async () => {
    const before = await scrape(instance);
    const ok = sample(before, 'portcullis_config_reloads_total', { result: 'ok' });
    const failed = sample(before, 'portcullis_config_reloads_total', { result: 'error' });
    expect(before).toMatch(/^portcullis_config_reloads_total\{result="error"\} /m);
    const started = sample(before, 'portcullis_config_last_reload_success_timestamp_seconds');
    expect(started).toBeGreaterThan(Date.now() / 1000 - 600);

    await sleep(20);
    const goodAt = Date.now() / 1000;
    expect((await admin(instance, 'POST', '/admin/reload', {})).status).toBe(200);
    const afterGood = await scrape(instance);
    expect(sample(afterGood, 'portcullis_config_reloads_total', { result: 'ok' })).toBe(ok + 1);
    const lastGood = sample(afterGood, 'portcullis_config_last_reload_success_timestamp_seconds');
    expect(lastGood).toBeGreaterThanOrEqual(goodAt - 0.001);
    expect(lastGood).toBeGreaterThan(started);

    const good = readFileSync(file, 'utf8');
    pki.write('operator-metrics.yaml', good + 'cache: { maxEntries: -1 }\n');
    try {
      expect((await admin(instance, 'POST', '/admin/reload', {})).status).toBe(400);
    } finally {
      pki.write('operator-metrics.yaml', good);
    }
    const afterBad = await scrape(instance);
    expect(sample(afterBad, 'portcullis_config_reloads_total', { result: 'error' })).toBe(failed + 1);
    expect(sample(afterBad, 'portcullis_config_reloads_total', { result: 'ok' })).toBe(ok + 1);
    expect(sample(afterBad, 'portcullis_config_last_reload_success_timestamp_seconds')).toBe(lastGood);
  });

  it('counts remote JWKS fetches by result: ok, error (HTTP 500), timeout', async () => {
    const before = await scrape(instance);
    for (const result of ['ok', 'error', 'timeout']) expect(before).toMatch(new RegExp(`^portcullis_jwks_fetches_total\\{result="${result}"\\} 0$`, 'm'));
    expect((await refund(OK_ISS)).status).toBe(200);
    expect((await refund(BROKEN_ISS)).status).toBe(401);
    expect((await refund(SLOW_ISS)).status).toBe(401);
    const text = await scrape(instance);
    expect(sample(text, 'portcullis_jwks_fetches_total', { result: 'ok' })).toBe(1);
    expect(sample(text, 'portcullis_jwks_fetches_total', { result: 'error' })).toBe(1);
    expect(sample(text, 'portcullis_jwks_fetches_total', { result: 'timeout' })).toBe(1);
  });

  it('decision-duration buckets reach 10 s, above the default pdp.timeout of 250 ms', async () => {
    const text = await scrape(instance);
    const bounds = [...text.matchAll(/^portcullis_decision_duration_seconds_bucket\{le="([^"]+)"/gm)].map((m) => Number(m[1])).filter(Number.isFinite);
    expect(Math.max(...bounds)).toBeGreaterThanOrEqual(10);
  });

  it('reports the embedded PDP circuit as closed (0)', async () => {
    expect(sample(await scrape(instance), 'portcullis_pdp_circuit_state')).toBe(0);
  });
});

describe('portcullis_pdp_circuit_state with a remote PDP that is down', () => {
  let pki: Pki;
  let upstream: Upstream;
  let instance: Instance;
  let agent: Agent;
  let key: IssuerKey;

  beforeAll(async () => {
    pki = await createPki();
    upstream = await startUpstream();
    key = await issuerKey('k');
    pki.write('jit.json', key.jwks);
    // Port 1 on loopback: nothing listens, every call fails at once.
    ({ instance } = await startNamed(pki, 'circuit.yaml', configYaml(pki, upstream.url, DEFAULT_ROUTES).replace('pdp: { policyFile: policy.yaml }', 'pdp: { kind: authzen, url: "http://127.0.0.1:1/access/v1/evaluation", timeout: 200ms }') + `grants: { issuers: [{ issuer: "${JIT_ISS}", jwksFile: jit.json }] }\ncache: { maxEntries: 0 }\n`));
    agent = clientAgent(pki.ca.bundlePem, await pki.ca.svid('/ns/prod/sa/web'));
  });
  afterAll(async () => {
    await agent.close();
    await instance.close();
    await upstream.close();
    pki.cleanup();
  });

  it('is 0 (closed) before failures and 2 (open) once repeated failures trip the breaker', async () => {
    // The readiness probe has failed once already at start: the circuit is still closed.
    expect(sample(await scrape(instance), 'portcullis_pdp_circuit_state')).toBe(0);
    const token = await signToken(grantClaims({ sub: 'spiffe://example.org/ns/prod/sa/web' }), { key: key.key, kid: 'k' });
    for (let i = 0; i < 6; i++) {
      const refused = await get(agent, instance.proxyPort, '/orders/1/refund', { method: 'POST', headers: { 'x-jit-grant': token } });
      expect([refused.status, refused.json().reason]).toEqual([503, 'pdp_unavailable']);
    }
    expect(sample(await scrape(instance), 'portcullis_pdp_circuit_state')).toBe(2);
  });
});
