// The fleet's revocation bus (SPEC "Fleet-wide revocation", decision step 7; issue 12 items
// 1-4 and 6) with a real redis-server on a free port and real sidecars: a revocation published
// on one sidecar (or by any tool with XADD) is refused by every sidecar within 100 ms; a
// sidecar that (re)starts reads the whole stream; CLIENT KILL and a Redis restart lose nothing
// that was published; a bus not read for maxStaleness fails closed and recovers by itself;
// malformed entries are skipped and counted.
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../../src/config/load.ts';
import { startInstance } from '../../src/cli/instance.ts';
import { memoryAuditLog as auditInMemory } from '../../src/telemetry/audit.ts';
import { MAIN } from '../support/child-proxy.ts';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Agent } from 'undici';
import { request } from 'undici';
import type { Instance } from '../../src/cli/instance.ts';
import { mintPosture } from '../../src/cli/mint.ts';
import type { memoryAuditLog } from '../../src/telemetry/audit.ts';
import { clientAgent, configYaml, createPki, get, startUpstream, type Pki, type Upstream } from '../support/harness.ts';
import { rawSession } from '../support/raw-tls.ts';
import { startRedis, type RedisServer } from '../support/redis-server.ts';
import { admin, grantClaims, issuerKey, JIT_ISS, metric, newJti, POSTURE_ISS, signToken, sleep, startNamed, SUPPORT_ID, type GrantClaims, type IssuerKey } from './decision-support.ts';

const POLICY = `rules:
  - id: support
    effect: allow
    subjects: ["spiffe://example.org/ns/prod/sa/support-*"]
    actions: ["notes.write"]
`;

const ROUTES = `routes:
  - name: health
    match: { methods: [GET], path: /healthz }
    privileged: false
  - name: notes
    match: { methods: [POST], path: /notes }
    action: notes.write
    resource: note
    sensitivity: low
  - name: feed
    match: { methods: [GET], path: /feed }
    action: notes.write
    resource: feed
    sensitivity: low
`;

const MAX_STALENESS_MS = 1_000;

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Runs `portcullis ARGS`; never throws: the exit code is part of the answer. */
function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { encoding: 'utf8' }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

describe('the revocation bus (revocation.source: redis)', () => {
  let pki: Pki;
  let upstream: Upstream;
  let agent: Agent;
  let jit: IssuerKey;
  let postureKey: IssuerKey;
  let redis: RedisServer;
  const running = new Set<Instance>();

  const grant = (c: GrantClaims = {}) => signToken(grantClaims({ scope: 'notes.write', ...c }), { key: jit.key, kid: jit.kid });
  const posture = () => mintPosture({ key: postureKey.key, kid: postureKey.kid, iss: POSTURE_ISS, sub: SUPPORT_ID, trust: 'high', ttl: '10m' });

  async function post(instance: Instance, headers: Record<string, string> = {}): Promise<{ status: number; reason: string | undefined }> {
    const reply = await get(agent, instance.proxyPort, '/notes', { method: 'POST', headers });
    return { status: reply.status, reason: reply.status === 200 ? undefined : (JSON.parse(reply.text) as { reason: string }).reason };
  }

  function busYaml(stream: string, more = ''): string {
    return configYaml(
      pki,
      upstream.url,
      `${ROUTES}grants: { issuers: [{ issuer: "${JIT_ISS}", jwksFile: jit-jwks.json }], maxLifetime: 1h }
posture: { issuers: [{ issuer: "${POSTURE_ISS}", jwksFile: posture-jwks.json }] }
revocation: { source: redis, url: "${redis.url}", stream: "${stream}", maxStaleness: ${MAX_STALENESS_MS}ms, retain: 1h, connectTimeout: 300ms${more} }
`,
    );
  }

  async function sidecar(name: string, yaml: string): Promise<{ instance: Instance; audit: ReturnType<typeof memoryAuditLog> }> {
    const started = await startNamed(pki, name, yaml);
    running.add(started.instance);
    return started;
  }

  async function stopSidecar(instance: Instance): Promise<void> {
    running.delete(instance);
    await instance.close();
  }

  async function ready(instance: Instance): Promise<number> {
    const response = await request(`http://127.0.0.1:${instance.adminPort}/readyz`);
    await response.body.text();
    return response.statusCode;
  }

  beforeAll(async () => {
    pki = await createPki();
    upstream = await startUpstream();
    jit = await issuerKey('jit-1');
    postureKey = await issuerKey('posture-1');
    pki.write('jit-jwks.json', jit.jwks);
    pki.write('posture-jwks.json', postureKey.jwks);
    pki.write('policy.yaml', POLICY);
    agent = clientAgent(pki.ca.bundlePem, await pki.ca.svid('/ns/prod/sa/support-bot'));
    redis = await startRedis();
  });
  // A test that failed leaves its sidecars running: stop them, so each test sees only its own.
  beforeEach(async () => {
    for (const instance of [...running]) await stopSidecar(instance);
  });
  afterAll(async () => {
    for (const instance of running) await instance.close();
    await agent?.close();
    await upstream?.close();
    await redis?.close();
    pki?.cleanup();
  });

  it('three sidecars refuse a grant revoked on one of them (POST /admin/revoke) within 100 ms p99; each sidecar\'s lag is printed', async () => {
    const stream = `s-${newJti('three')}`;
    const fleet = await Promise.all(['a', 'b', 'c'].map((n) => sidecar(`three-${n}.yaml`, busYaml(stream))));
    for (const { instance } of fleet) await until('ready', async () => (await ready(instance)) === 200);
    const refusedAfter: number[][] = [[], [], []];
    const rounds = 30;
    // Round 0 warms up (JIT, connections): applied and checked, not counted in the figures.
    for (let round = -1; round < rounds; round++) {
      const jti = newJti('fleet');
      const token = await grant({ jti });
      // Every sidecar allows it, and caches the allow.
      for (const { instance } of fleet) expect(await post(instance, { 'x-jit-grant': token })).toEqual({ status: 200, reason: undefined });
      const origin = fleet[(round + 3) % 3]!.instance;
      const sent = performance.now();
      const revoked = await admin(origin, 'POST', '/admin/revoke', { jti, reason: 'task-done', by: 'test' });
      expect(revoked).toMatchObject({ status: 200, json: { revoked: { jti }, fleet: true } });
      await Promise.all(
        fleet.map(async ({ instance }, i) => {
          for (;;) {
            const answer = await post(instance, { 'x-jit-grant': token });
            if (answer.status === 403) {
              expect(answer.reason).toBe('grant_revoked');
              if (round >= 0) refusedAfter[i]!.push(performance.now() - sent);
              return;
            }
            if (performance.now() - sent > 2_000) throw new Error(`sidecar ${i} still allows ${jti} 2 s after its revocation`);
          }
        }),
      );
    }
    const lines: string[] = [];
    for (const [i, { instance }] of fleet.entries()) {
      const count = await metric(instance, 'portcullis_revocation_lag_seconds_count');
      const within100 = await metric(instance, 'portcullis_revocation_lag_seconds_bucket', { le: '0.1' });
      const sum = await metric(instance, 'portcullis_revocation_lag_seconds_sum');
      expect(count).toBe(rounds + 1);
      // The SPEC measure: every entry applied within 100 ms of its id time, on every sidecar
      // (applied is refusing: the next request reads the store).
      expect(within100).toBe(rounds + 1);
      // End to end, from sending the POST to a refused request (both round trips included): the
      // same goal, with room for a CI machine busy with other tests.
      const samples = refusedAfter[i]!;
      expect(percentile(samples, 50)).toBeLessThanOrEqual(100);
      expect(percentile(samples, 99)).toBeLessThanOrEqual(250);
      lines.push(`sidecar ${'abc'[i]}: lag (XADD id → applied) mean ${((sum / count) * 1000).toFixed(2)} ms, ${within100} of ${count} ≤ 100 ms; POST sent → request refused p50 ${percentile(samples, 50).toFixed(1)} ms p99 ${percentile(samples, 99).toFixed(1)} ms`);
    }
    console.log(`revocation lag over ${rounds} revocations, 3 sidecars:\n  ${lines.join('\n  ')}`);
    const audit = fleet[1]!.audit.revocations;
    expect(audit.length).toBe(rounds + 1);
    // On a sidecar that published: origin admin; on the others: origin bus.
    expect(audit.filter((r) => r.origin === 'admin').length).toBe(10);
    expect(audit.filter((r) => r.origin === 'bus').length).toBe(21);
    expect(audit[0]).toMatchObject({ event: 'revocation', reason: 'task-done', by: 'test' });
    for (const { instance } of fleet) await stopSidecar(instance);
  });

  it('a revocation published on one sidecar cuts what is open on its grant on another (a server-sent-events response), within 100 ms of the entry', async () => {
    const original = upstream.handler;
    upstream.handler = (req, res) => {
      if (req.url !== '/feed') return original(req, res);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const tick = setInterval(() => res.write('data: tick\n\n'), 20);
      res.on('close', () => clearInterval(tick));
    };
    try {
      const stream = `s-${newJti('cut')}`;
      const [a, b] = await Promise.all([sidecar('cut-a.yaml', busYaml(stream)), sidecar('cut-b.yaml', busYaml(stream))]);
      for (const { instance } of [a, b]) await until('ready', async () => (await ready(instance)) === 200);
      const jti = newJti('cut');
      const token = await grant({ jti });
      const raw = await rawSession(b.instance.proxyPort, pki.ca.bundlePem, await pki.ca.svid('/ns/prod/sa/support-bot'));
      raw.socket.write(`GET /feed HTTP/1.1\r\nHost: localhost\r\nx-jit-grant: ${token}\r\n\r\n`);
      await until('the feed streaming', () => raw.text().includes('data: tick'));
      const revokedAt = Date.now();
      expect((await admin(a.instance, 'POST', '/admin/revoke', { jti, reason: 'task-done' })).status).toBe(200);
      const closedAt = await raw.closed;
      console.log(`open SSE response on another sidecar cut ${closedAt - revokedAt} ms after POST /admin/revoke`);
      expect(closedAt - revokedAt).toBeLessThan(100);
      expect(b.audit.events.find((e) => e.grant_jti === jti)).toMatchObject({ event: 'stream_cut', reason: 'grant_revoked' });
      expect(b.audit.revocations.find((r) => r.jti === jti)).toMatchObject({ origin: 'bus', cut_exchanges: 1 });
      for (const { instance } of [a, b]) await stopSidecar(instance);
    } finally {
      upstream.handler = original;
    }
  });

  it('a sidecar (re)started after a revocation refuses it from its first request; before its first full read privileged requests refuse with 503 revocation_unavailable', async () => {
    const stream = `s-${newJti('restart')}`;
    const jti = newJti('before-start');
    const token = await grant({ jti });
    const publisher = await redis.client();
    // Many entries, so the start reads several XRANGE pages (1,000 each).
    for (let i = 0; i < 2_500; i++) await publisher.xAdd(stream, '*', { jti: `filler-${i}` });
    await publisher.xAdd(stream, '*', { jti, reason: 'task-done' });
    const { instance } = await sidecar('restart.yaml', busYaml(stream));
    // Refused from the very first request: unavailable before the read, revoked after it.
    const first = await post(instance, { 'x-jit-grant': token });
    expect(['revocation_unavailable', 'grant_revoked']).toContain(first.reason);
    await until('ready', async () => (await ready(instance)) === 200);
    expect(await post(instance, { 'x-jit-grant': token })).toEqual({ status: 403, reason: 'grant_revoked' });
    expect(await metric(instance, 'portcullis_revocation_bus_entries_read_total')).toBe(2_501);
    expect(await metric(instance, 'portcullis_revocation_entries')).toBe(2_501);
    // The backlog read at start does not count as lag.
    expect(await metric(instance, 'portcullis_revocation_lag_seconds_count')).toBe(0);
    const listed = await admin(instance, 'GET', '/admin/revocations');
    expect(listed.json).toMatchObject({ source: 'redis', entries: 2_501, by_kind: { jti: 2_501, sub: 0, posture_sub: 0 }, bus: { stream, state: 'up', fresh: true } });
    expect((listed.json.in_force as unknown[]).length).toBe(1_000);
    await stopSidecar(instance);

    // Restarted: no grant named by the stream is ever allowed, and no request waits on Redis to be refused.
    const again = await sidecar('restart-2.yaml', busYaml(stream));
    const started = performance.now();
    const firstAgain = await post(again.instance, { 'x-jit-grant': token });
    expect(firstAgain.status).not.toBe(200);
    expect(performance.now() - started).toBeLessThan(1_000);
    await until('ready', async () => (await ready(again.instance)) === 200);
    expect(await post(again.instance, { 'x-jit-grant': token })).toEqual({ status: 403, reason: 'grant_revoked' });
    expect(await post(again.instance, { 'x-jit-grant': await grant() })).toEqual({ status: 200, reason: undefined });
    await stopSidecar(again.instance);
  });

  it('at start, until the stream has been read whole, privileged requests refuse 503 revocation_unavailable and /readyz says why; unprivileged routes work; a Redis that comes up later is read and trusted', async () => {
    const late = await startRedis();
    try {
      await late.stop();
      const stream = `s-${newJti('late')}`;
      const { instance } = await sidecar('late.yaml', busYaml(stream).replace(redis.url, late.url));
      const started = performance.now();
      expect(await post(instance, { 'x-jit-grant': await grant() })).toEqual({ status: 503, reason: 'revocation_unavailable' });
      expect(await post(instance)).toEqual({ status: 503, reason: 'revocation_unavailable' });
      // No request waited for Redis to answer.
      expect(performance.now() - started).toBeLessThan(500);
      expect((await get(agent, instance.proxyPort, '/healthz')).status).toBe(200);
      const readyz = await request(`http://127.0.0.1:${instance.adminPort}/readyz`);
      expect(readyz.statusCode).toBe(503);
      expect(await readyz.body.text()).toMatch(/revocation bus: the stream has not been read whole yet/);
      expect(await metric(instance, 'portcullis_revocation_bus_up')).toBe(0);
      expect(await admin(instance, 'GET', '/admin/revocations')).toMatchObject({ json: { bus: { state: expect.stringMatching(/^(down|connecting)$/), fresh: false, last_read_at: null } } });
      await late.start();
      const jti = newJti('late');
      await (await late.client()).xAdd(stream, '*', { jti });
      await until('ready', async () => (await ready(instance)) === 200, 10_000);
      expect(await post(instance, { 'x-jit-grant': await grant({ jti }) })).toEqual({ status: 403, reason: 'grant_revoked' });
      expect(await post(instance, { 'x-jit-grant': await grant() })).toEqual({ status: 200, reason: undefined });
      await stopSidecar(instance);
    } finally {
      await late.close();
    }
  });

  it('CLIENT KILL and a Redis restart lose nothing published: the sidecar resumes from the last entry it read; a Redis that comes back empty is logged and counted, and nothing held is forgotten', async () => {
    const stream = `s-${newJti('outage')}`;
    const { instance } = await sidecar('outage.yaml', busYaml(stream));
    await until('ready', async () => (await ready(instance)) === 200);
    const tokens = new Map<string, string>();
    for (const name of ['killed', 'restarted', 'kept', 'after-empty']) {
      const jti = newJti(name);
      tokens.set(name, jti);
      expect(await post(instance, { 'x-jit-grant': await grant({ jti }) })).toEqual({ status: 200, reason: undefined });
    }
    const test = await redis.client();

    // CLIENT KILL the reader, and publish right away, while it is disconnected.
    const list = (await test.sendCommand(['CLIENT', 'LIST'])) as string;
    const readerIds = list.split('\n').filter((line) => / name=portcullis-revocation-reader /.test(line)).map((line) => /^id=(\d+)/.exec(line)![1]!);
    expect(readerIds.length).toBe(1);
    await test.sendCommand(['CLIENT', 'KILL', 'ID', readerIds[0]!]);
    await test.xAdd(stream, '*', { jti: tokens.get('killed')!, reason: 'while-killed' });
    await until('the killed entry applied', () => instance.shared.revocations.holds('jti', tokens.get('killed')!), 5_000);
    expect(await post(instance, { 'x-jit-grant': await grant({ jti: tokens.get('killed')! }) })).toEqual({ status: 403, reason: 'grant_revoked' });

    // Redis restarted with its data (persisted): an entry published once it is back, before the sidecar reconnects, is read.
    await test.xAdd(stream, '*', { jti: tokens.get('kept')!, reason: 'before-restart' });
    await until('the kept entry applied', () => instance.shared.revocations.holds('jti', tokens.get('kept')!), 5_000);
    await redis.restart({ keepData: true, downMs: 200 });
    const publisher = await redis.client();
    await publisher.xAdd(stream, '*', { jti: tokens.get('restarted')!, reason: 'while-down' });
    await until('the entry published during the reconnect applied', () => instance.shared.revocations.holds('jti', tokens.get('restarted')!), 10_000);
    expect(await post(instance, { 'x-jit-grant': await grant({ jti: tokens.get('restarted')! }) })).toEqual({ status: 403, reason: 'grant_revoked' });
    expect(await metric(instance, 'portcullis_revocation_bus_gaps_total')).toBe(0);

    // Redis restarted empty: a gap, logged and counted; everything held is still refused.
    await redis.restart({ keepData: false });
    const fresh = await redis.client();
    await until('the gap seen', async () => (await metric(instance, 'portcullis_revocation_bus_gaps_total')) === 1, 10_000);
    await fresh.xAdd(stream, '*', { jti: tokens.get('after-empty')! });
    await until('the entry after the empty restart applied', () => instance.shared.revocations.holds('jti', tokens.get('after-empty')!), 10_000);
    await until('ready', async () => (await ready(instance)) === 200);
    for (const name of ['killed', 'kept', 'restarted', 'after-empty']) {
      expect(await post(instance, { 'x-jit-grant': await grant({ jti: tokens.get(name)! }) })).toEqual({ status: 403, reason: 'grant_revoked' });
    }
    await stopSidecar(instance);
  });

  it('Redis stopped → privileged requests refuse 503 revocation_unavailable within maxStaleness (unprivileged ones still pass, /readyz 503, bus_up 0); Redis back → recovery by itself', async () => {
    const stream = `s-${newJti('stale')}`;
    const { instance } = await sidecar('stale.yaml', busYaml(stream));
    await until('ready', async () => (await ready(instance)) === 200);
    expect(await metric(instance, 'portcullis_revocation_bus_up')).toBe(1);
    expect(await post(instance)).toEqual({ status: 200, reason: undefined });
    await redis.stop();
    const stopped = performance.now();
    await until('revocation_unavailable', async () => (await post(instance)).reason === 'revocation_unavailable', 3 * MAX_STALENESS_MS);
    const refusedAfter = performance.now() - stopped;
    // Within maxStaleness of the last successful read (that read was at most a block time, maxStaleness / 3, before the stop).
    expect(refusedAfter).toBeLessThanOrEqual(MAX_STALENESS_MS + 150);
    expect(refusedAfter).toBeGreaterThanOrEqual(MAX_STALENESS_MS / 3);
    console.log(`Redis stopped: privileged requests refused after ${refusedAfter.toFixed(0)} ms (maxStaleness ${MAX_STALENESS_MS} ms)`);
    expect(await post(instance, { 'x-jit-grant': await grant() })).toEqual({ status: 503, reason: 'revocation_unavailable' });
    expect((await get(agent, instance.proxyPort, '/healthz')).status).toBe(200);
    const readyz = await request(`http://127.0.0.1:${instance.adminPort}/readyz`);
    expect(readyz.statusCode).toBe(503);
    expect(await readyz.body.text()).toMatch(/revocation bus stale/);
    expect(await metric(instance, 'portcullis_revocation_bus_up')).toBe(0);
    expect(await metric(instance, 'portcullis_revocation_bus_staleness_seconds')).toBeGreaterThanOrEqual(1);
    expect(await metric(instance, 'portcullis_decisions_total', { reason: 'revocation_unavailable', source: 'local' })).toBeGreaterThanOrEqual(2);
    // Never cached: the decision cache holds nothing it decided while stale.
    const cacheWhileStale = (await admin(instance, 'GET', '/admin/cache')).json.entries;
    // A revocation posted while the bus is down is applied here, and the answer says the fleet was not told.
    const jti = newJti('down');
    const local = await admin(instance, 'POST', '/admin/revoke', { jti });
    expect(local).toMatchObject({ status: 503, json: { revoked: { jti }, fleet: false } });
    expect(local.json.error).toMatch(/^revocation bus unreachable: .*; applied on this sidecar only$/);
    expect(instance.shared.revocations.holds('jti', jti)).toBe(true);

    await redis.start();
    await until('recovery', async () => (await post(instance)).status === 200, 10_000);
    expect(await ready(instance)).toBe(200);
    expect(await metric(instance, 'portcullis_revocation_bus_up')).toBe(1);
    expect(cacheWhileStale).toBe(1); // the allow cached before the outage, nothing more
    await stopSidecar(instance);
  });

  it('malformed entries are skipped, logged once with their id and counted, and never stop the reader; `redis-cli XADD … jti 7f3a reason task-done` is enforced', async () => {
    const stream = `s-${newJti('malformed')}`;
    const { instance, audit } = await sidecar('malformed.yaml', busYaml(stream));
    await until('ready', async () => (await ready(instance)) === 200);
    const test = await redis.client();
    await test.xAdd(stream, '*', { foo: 'bar' });
    await test.xAdd(stream, '*', { sub: 'spiffe://example.org/ns//sa' });
    await test.xAdd(stream, '*', { jti: 'x-bad-exp', exp: 'soon' });
    await test.xAdd(stream, '*', { posture_sub: 'https://not-spiffe' });
    const jti = `7f3a-${newJti('cli')}`;
    expect(await post(instance, { 'x-jit-grant': await grant({ jti }) })).toEqual({ status: 200, reason: undefined });
    // The line a SOAR or an issuer runs (README "Revoking a grant across the fleet").
    const id = execFileSync('redis-cli', ['-p', String(redis.port), 'XADD', stream, '*', 'jti', jti, 'reason', 'task-done'], { encoding: 'utf8' }).trim();
    expect(id).toMatch(/^\d+-\d+$/);
    await until('the redis-cli entry applied', () => instance.shared.revocations.holds('jti', jti), 5_000);
    expect(await post(instance, { 'x-jit-grant': await grant({ jti }) })).toEqual({ status: 403, reason: 'grant_revoked' });
    expect(await metric(instance, 'portcullis_revocation_bus_entries_skipped_total')).toBe(4);
    expect(await metric(instance, 'portcullis_revocation_bus_entries_read_total')).toBe(5);
    expect(instance.shared.revocations.holds('jti', 'x-bad-exp')).toBe(false);
    expect(audit.revocations.find((r) => r.jti === jti)).toMatchObject({ event: 'revocation', entry_id: id, reason: 'task-done', origin: 'bus' });
    await stopSidecar(instance);
  });

  it('posture_sub: the peer\'s posture assertions issued at or before the entry are refused posture_revoked on every sidecar; one issued later passes', async () => {
    const stream = `s-${newJti('posture')}`;
    const [a, b] = await Promise.all([sidecar('posture-a.yaml', busYaml(stream)), sidecar('posture-b.yaml', busYaml(stream))]);
    for (const { instance } of [a, b]) await until('ready', async () => (await ready(instance)) === 200);
    const old = await posture();
    for (const { instance } of [a, b]) expect(await post(instance, { 'x-device-posture': old })).toEqual({ status: 200, reason: undefined });
    const revokedAt = Date.now();
    expect(await admin(a.instance, 'POST', '/admin/revoke', { posture_sub: SUPPORT_ID, reason: 'device-lost' })).toMatchObject({ status: 200, json: { revoked: { posture_sub: SUPPORT_ID } } });
    await until('b applied it', () => b.instance.shared.revocations.holds('posture_sub', SUPPORT_ID), 2_000);
    for (const { instance } of [a, b]) {
      expect(await post(instance, { 'x-device-posture': old })).toEqual({ status: 401, reason: 'posture_revoked' });
      // The grant is not what was revoked.
      expect(await post(instance, { 'x-jit-grant': await grant() })).toEqual({ status: 200, reason: undefined });
    }
    // iat has one-second resolution and clockSkew (2 s) is fail-closed: an assertion issued after both passes.
    await sleep(Math.floor(revokedAt / 1000) * 1000 + 1000 + 2000 - Date.now() + 10);
    const renewed = await posture();
    for (const { instance } of [a, b]) expect(await post(instance, { 'x-device-posture': renewed })).toEqual({ status: 200, reason: undefined });
    expect(b.audit.revocations.at(-1)).toMatchObject({ posture_sub: SUPPORT_ID, reason: 'device-lost', origin: 'bus' });
    for (const { instance } of [a, b]) await stopSidecar(instance);
  });

  it('portcullis revoke: redis → XADD (every sidecar applies it), local → the admin API; bad IDs and an unreachable bus exit 1 naming them; usage exit 2', async () => {
    const stream = `s-${newJti('cli')}`;
    const fleet = await Promise.all(['a', 'b'].map((n) => sidecar(`cli-${n}.yaml`, busYaml(stream))));
    for (const { instance } of fleet) await until('ready', async () => (await ready(instance)) === 200);
    // The CLI reads the same config a sidecar runs with (only its revocation and admin keys matter).
    const busConfig = pki.write('cli-bus.yaml', busYaml(stream));
    const jti = newJti('cli-bus');
    const token = await grant({ jti });
    for (const { instance } of fleet) expect(await post(instance, { 'x-jit-grant': token })).toEqual({ status: 200, reason: undefined });
    const done = await cli(['revoke', '--config', busConfig, '--jti', jti, '--reason', 'incident-42']);
    expect(done.code).toBe(0);
    expect(done.stdout).toMatch(new RegExp(`^revoked jti ${jti}: entry \\d+-\\d+ on redis://127\\.0\\.0\\.1:${redis.port} stream ${stream}`));
    for (const { instance, audit } of fleet) {
      await until('applied', () => instance.shared.revocations.holds('jti', jti), 2_000);
      expect(await post(instance, { 'x-jit-grant': token })).toEqual({ status: 403, reason: 'grant_revoked' });
      expect(audit.revocations.at(-1)).toMatchObject({ jti, reason: 'incident-42', origin: 'bus', by: expect.stringMatching(/^portcullis revoke \(/) });
    }
    const posture = await cli(['revoke', '--config', busConfig, '--posture-sub', SUPPORT_ID]);
    expect([posture.code, posture.stdout]).toEqual([0, expect.stringMatching(new RegExp(`^revoked posture_sub ${SUPPORT_ID}: entry `))]);
    expect(await cli(['revoke', '--config', busConfig, '--sub', 'spiffe://example.org/ns//x'])).toMatchObject({ code: 1, stderr: expect.stringMatching(/^revoke: --sub: /) });
    expect(await cli(['revoke', '--config', busConfig, '--jti', 'a', '--sub', SUPPORT_ID])).toMatchObject({ code: 2, stderr: expect.stringMatching(/exactly one of/) });
    expect(await cli(['revoke', '--config', busConfig])).toMatchObject({ code: 2 });
    const help = await cli(['revoke', '--help']);
    expect([help.code, help.stdout]).toEqual([0, expect.stringMatching(/^usage: portcullis revoke --config FILE \(--jti ID/)]);
    // A bus that cannot be reached, with a password in its URL: exit 1 naming it, the password never printed.
    const down = pki.write('cli-down.yaml', busYaml(stream).replace(redis.url, 'redis://ops:s3cr3t-pw@127.0.0.1:1'));
    const unreachable = await cli(['revoke', '--config', down, '--jti', 'x']);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/^revoke: revocation bus unreachable \(redis:\/\/ops:\*\*\*@127\.0\.0\.1:1 stream /);
    expect(unreachable.stderr).not.toContain('s3cr3t-pw');
    for (const { instance } of fleet) await stopSidecar(instance);

    // revocation.source local: the admin API named in the config.
    const local = await sidecar('cli-local.yaml', configYaml(pki, upstream.url, `${ROUTES}grants: { issuers: [{ issuer: "${JIT_ISS}", jwksFile: jit-jwks.json }] }\n`));
    const localConfig = pki.write('cli-local-admin.yaml', configYaml(pki, upstream.url, ROUTES).replace('admin: { address: 127.0.0.1, port: 0 }', `admin: { address: 127.0.0.1, port: ${local.instance.adminPort} }`));
    const localJti = newJti('cli-local');
    const localToken = await grant({ jti: localJti });
    expect(await post(local.instance, { 'x-jit-grant': localToken })).toEqual({ status: 200, reason: undefined });
    const viaAdmin = await cli(['revoke', '--config', localConfig, '--jti', localJti, '--reason', 'done']);
    expect(viaAdmin).toMatchObject({ code: 0, stdout: expect.stringMatching(new RegExp(`^revoked jti ${localJti}: entry \\d+-\\d+ on this sidecar's admin API`)) });
    expect(await post(local.instance, { 'x-jit-grant': localToken })).toEqual({ status: 403, reason: 'grant_revoked' });
    expect(local.audit.revocations.at(-1)).toMatchObject({ jti: localJti, reason: 'done', origin: 'admin' });
    await stopSidecar(local.instance);
    const gone = await cli(['revoke', '--config', localConfig, '--jti', 'y']);
    expect(gone).toMatchObject({ code: 1, stderr: expect.stringMatching(/^revoke: admin API unreachable at http:\/\/127\.0\.0\.1:\d+\/admin\/revoke: ECONNREFUSED/) });
  });

  it('ACL user and password (passwordFile, or in the URL) with the deploy kit\'s ACL; a wrong password fails closed and no log line holds a secret', async () => {
    // The ACL arguments of deploy/kubernetes/revocation-redis.yaml, run for real.
    const manifest = parseAllDocuments(readFileSync(new URL('../../deploy/kubernetes/revocation-redis.yaml', import.meta.url), 'utf8')).map((d) => d.toJS() as { kind: string; spec: { template: { spec: { containers: { args: string[] }[] } } } });
    const args = manifest.find((d) => d.kind === 'Deployment')!.spec.template.spec.containers[0]!.args;
    const password = `pw-${newJti('acl')}`;
    const acl = await startRedis(args.map((a) => a.replace('$(REDIS_PASSWORD)', password)), { username: 'portcullis', password });
    try {
      const stream = `portcullis:${newJti('acl')}`;
      pki.write('redis-password', `${password}\n`);
      const host = acl.url.replace('redis://', '');
      const viaFile = await sidecar('acl-file.yaml', busYaml(stream, ', passwordFile: redis-password').replace(redis.url, `redis://portcullis@${host}`));
      const viaUrl = await sidecar('acl-url.yaml', busYaml(stream).replace(redis.url, `redis://portcullis:${password}@${host}`));
      for (const { instance } of [viaFile, viaUrl]) await until('ready', async () => (await ready(instance)) === 200);
      const jti = newJti('acl');
      expect(await admin(viaFile.instance, 'POST', '/admin/revoke', { jti })).toMatchObject({ status: 200, json: { fleet: true } });
      await until('applied on the other', () => viaUrl.instance.shared.revocations.holds('jti', jti), 2_000);
      expect((await admin(viaUrl.instance, 'GET', '/admin/revocations')).json.bus).toMatchObject({ url: `redis://portcullis:***@${host}` });
      // Least privilege: that user can touch nothing but portcullis:* streams.
      const own = await acl.client();
      await expect(own.set('other-key', 'x')).rejects.toThrow(/NOPERM/);
      await expect(own.xAdd('elsewhere', '*', { jti: 'x' })).rejects.toThrow(/NOPERM/);

      // A wrong password: never ready, privileged requests refuse, and neither password reaches a log line.
      const lines: string[] = [];
      const sink = new Writable({ write: (chunk: Buffer, _enc, done) => (lines.push(chunk.toString()), done()) });
      const wrongFile = pki.write('acl-wrong.yaml', busYaml(stream).replace(redis.url, `redis://portcullis:wrong-${password}@${host}`));
      const wrong = await startInstance(loadConfig(wrongFile), { logger: pino({ level: 'info' }, sink), svidPollMs: 60_000, configFile: wrongFile, audit: auditInMemory() });
      running.add(wrong);
      await sleep(600);
      expect(await ready(wrong)).toBe(503);
      expect(await post(wrong)).toEqual({ status: 503, reason: 'revocation_unavailable' });
      const published = await admin(wrong, 'POST', '/admin/revoke', { jti: 'z' });
      expect(published.status).toBe(503);
      await stopSidecar(wrong);
      const log = lines.join('');
      expect(log).toMatch(/revocation bus: read failed/);
      expect(log).toMatch(/WRONGPASS|invalid username-password/);
      expect(log).not.toContain(password);
      expect(JSON.stringify(published.json)).not.toContain(password);
      for (const { instance } of [viaFile, viaUrl]) await stopSidecar(instance);
    } finally {
      await acl.close();
    }
  });
});
