// The fleet revocation bus at scale (issue 12 item 7, SPEC "Fleet-wide revocation"), on a real
// redis-server and real sidecars, each its own `portcullis run` process (so its CPU and RSS are
// its own; src/ by default, dist/ with --dist as `npm run bench:revocation` does):
//   1. lag to 3 sidecars under a steady load of cached privileged requests, revocations XADDed
//      at a modest rate: from each sidecar's portcullis_revocation_lag_seconds (entry id time →
//      applied) and end to end (XADD sent → first refusal of a request carrying that grant);
//   2. 1,000 revocations/s for 10 s: every sidecar keeping up (how far its last id read trails
//      the stream tail, sampled each second, and how long after the last XADD it has read it);
//   3. start-up with 100,000 entries on the stream: spawn → /readyz 200, privileged requests
//      refused before the first full read, RSS and heap per entry against an empty stream.
// The cache-hit cost with 100,000 revocations held is in bench/micro/run.ts (same run as the
// empty-store case). Every scenario is bounded (≤ 30 s) and the load is paced, not saturating:
// this machine is shared.
// Run: npm run bench:revocation, or node bench/revocation/run.ts [--quick] [--json]
import { randomUUID } from 'node:crypto';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { mintGrant } from '../../src/cli/mint.ts';
import { configYaml, createPki, startUpstream, type Pki } from '../../test/support/harness.ts';
import { startRedis } from '../../test/support/redis-server.ts';
import { issuerKey, JIT_ISS, OWN_ID, SUPPORT_ID, type IssuerKey } from '../../test/integration/decision-support.ts';
import { atMost, bucketPercentile, gauge, histogram, percentile, since } from './histogram.ts';
import { adminGet, freePort, rssOf, spawnSidecar, untilReady, type Sidecar } from './sidecar.ts';
import { NOTES_ROUTES } from '../../test/support/notes-route.ts';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    dist: { type: 'boolean', default: false },
    scenarios: { type: 'string', default: 'lag,rate,startup' },
  },
});
const quick = flags.quick!;
const MAIN = flags.dist ? join(HERE, '../../dist/cli/main.js') : join(HERE, '../../src/cli/main.ts');
const scenarios = new Set(flags.scenarios!.split(','));
const P = {
  sidecars: 3,
  loadConnections: 2,
  /** Requests per second per sidecar of the steady load (paced: a shared 2-core machine). */
  loadRate: quick ? 50 : 200,
  lagRate: 20,
  lagSeconds: quick ? 1 : 10,
  burstRate: quick ? 200 : 1_000,
  burstSeconds: quick ? 1 : 10,
  startupEntries: quick ? 5_000 : 100_000,
  /** Load running before the first revocation; a started sidecar's settling before its RSS is read. */
  settleMs: quick ? 200 : 1_000,
};

const POLICY = `rules:
  - id: support
    effect: allow
    subjects: ["spiffe://example.org/ns/prod/sa/support-*"]
    actions: ["notes.write"]
`;
const ROUTES = NOTES_ROUTES;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const ms = (seconds: number) => (Number.isFinite(seconds) ? `${(seconds * 1000).toFixed(seconds < 0.01 ? 1 : 0)} ms` : String(seconds));
const idTime = (id: string) => Number(id.split('-')[0]);

const running: Sidecar[] = [];
const pki: Pki = await createPki();
const upstream = await startUpstream();
const redis = await startRedis();
const publisher = await redis.client();
const jit: IssuerKey = await issuerKey('jit-1');
pki.write('jit-jwks.json', jit.jwks);
pki.write('policy.yaml', POLICY);
const clientSvid = await pki.ca.svid('/ns/prod/sa/support-bot');
const agents: Agent[] = [];
function agent(connections: number): Agent {
  const a = new Agent({ connections, pipelining: 1, connect: { ca: pki.ca.bundlePem, cert: clientSvid.certPem, key: clientSvid.keyPem, servername: 'localhost' } });
  agents.push(a);
  return a;
}

async function cleanup(): Promise<void> {
  await Promise.all(running.splice(0).map((s) => s.stop()));
  await Promise.all(agents.map((a) => a.close()));
  await upstream.close();
  await redis.close();
  pki.cleanup();
}
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));

async function sidecar(name: string, stream: string): Promise<Sidecar> {
  const [port, adminPort] = [await freePort(), await freePort()];
  const yaml = configYaml(pki, upstream.url, `${ROUTES}grants: { issuers: [{ issuer: "${JIT_ISS}", jwksFile: jit-jwks.json }], maxLifetime: 1h }
revocation: { source: redis, url: "${redis.url}", stream: "${stream}", maxStaleness: 5s, retain: 1h, connectTimeout: 1s }
audit: { file: /dev/null }
`).replace('listen: { address: 127.0.0.1, port: 0 }', `listen: { address: 127.0.0.1, port: ${port} }`).replace('admin: { address: 127.0.0.1, port: 0 }', `admin: { address: 127.0.0.1, port: ${adminPort} }`);
  const s = spawnSidecar(MAIN, pki.write(name, yaml), port, adminPort);
  running.push(s);
  return s;
}

async function stopSidecar(s: Sidecar): Promise<void> {
  running.splice(running.indexOf(s), 1);
  await s.stop();
}

const grant = (jti: string) => mintGrant({ key: jit.key, kid: jit.kid, iss: JIT_ISS, sub: SUPPORT_ID, aud: OWN_ID, scope: 'notes.write', ttl: '30m', jti });

async function post(dispatcher: Agent, s: Sidecar, token: string): Promise<{ status: number; reason?: string }> {
  const response = await request(`https://localhost:${s.port}/notes`, { method: 'POST', dispatcher, headers: { 'x-jit-grant': token }, headersTimeout: 5_000, bodyTimeout: 5_000 });
  const text = await response.body.text();
  if (response.statusCode === 200) return { status: 200 };
  try {
    return { status: response.statusCode, reason: (JSON.parse(text) as { reason?: string }).reason };
  } catch {
    return { status: response.statusCode };
  }
}

async function scrape(s: Sidecar): Promise<string> {
  return (await adminGet(s, '/metrics')).text;
}

async function lastIdRead(s: Sidecar): Promise<string | null> {
  const body = JSON.parse((await adminGet(s, '/admin/revocations')).text) as { bus?: { last_entry_id?: string | null } };
  return body.bus?.last_entry_id ?? null;
}

/** A paced load of cached privileged requests on one sidecar: `rate`/s over `connections` loops. */
function steadyLoad(s: Sidecar, token: string, rate: number, connections: number): { stop(): Promise<{ ok: number; other: number; seconds: number }> } {
  const dispatcher = agent(connections);
  let stopping = false;
  let ok = 0;
  let other = 0;
  const started = performance.now();
  const loops = Array.from({ length: connections }, async (_, i) => {
    const every = (1000 * connections) / rate;
    let next = performance.now() + (i * every) / connections;
    while (!stopping) {
      await sleep(next - performance.now());
      next += every;
      try {
        if ((await post(dispatcher, s, token)).status === 200) ok++;
        else other++;
      } catch {
        other++;
      }
    }
  });
  return {
    async stop() {
      stopping = true;
      await Promise.all(loops);
      return { ok, other, seconds: (performance.now() - started) / 1000 };
    },
  };
}

const report: string[] = [];
const figures: Record<string, unknown> = {};
const out = (line: string) => {
  report.push(line);
  if (!flags.json) process.stdout.write(line + '\n');
};

const cpuModel = cpus()[0]?.model ?? 'unknown CPU';
out(`machine: ${cpus().length} × ${cpuModel}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}, load average at start ${loadavg().map((l) => l.toFixed(2)).join(' ')}; sidecars: child processes from ${flags.dist ? 'dist/' : 'src/'}${quick ? ' (--quick: tiny sizes, not figures)' : ''}`);

try {
  if (scenarios.has('lag') || scenarios.has('rate')) {
    const stream = `bench:revocations:${randomUUID()}`;
    const fleet = await Promise.all(Array.from({ length: P.sidecars }, (_, i) => sidecar(`fleet-${i}.yaml`, stream)));
    await Promise.all(fleet.map((s) => untilReady(s)));
    const loadToken = await grant(`load-${randomUUID()}`);
    const probeAgents = fleet.map(() => agent(4));
    for (const [i, s] of fleet.entries()) if ((await post(probeAgents[i]!, s, loadToken)).status !== 200) throw new Error('the load grant is not allowed');

    if (scenarios.has('lag')) {
      const n = P.lagRate * P.lagSeconds;
      const jtis = Array.from({ length: n }, () => `lag-${randomUUID()}`);
      const tokens = await Promise.all(jtis.map(grant));
      // Every sidecar allows and caches each grant first: the revocation then purges a cached allow.
      await Promise.all(fleet.map(async (s, i) => {
        for (const token of tokens) if ((await post(probeAgents[i]!, s, token)).status !== 200) throw new Error('a lag grant is not allowed');
      }));
      const before = await Promise.all(fleet.map(scrape));
      const loads = fleet.map((s) => steadyLoad(s, loadToken, P.loadRate, P.loadConnections));
      await sleep(P.settleMs);
      const endToEnd: number[][] = fleet.map(() => []);
      const wrongReason: string[] = [];
      const probes: Promise<void>[] = [];
      const t0 = performance.now();
      for (let k = 0; k < n; k++) {
        await sleep(t0 + (k * 1000) / P.lagRate - performance.now());
        const sent = performance.now();
        const added = publisher.xAdd(stream, '*', { jti: jtis[k]!, reason: 'bench', by: 'bench' });
        probes.push(
          ...fleet.map(async (s, i) => {
            await added;
            for (;;) {
              const answer = await post(probeAgents[i]!, s, tokens[k]!);
              if (answer.status !== 200) {
                if (answer.reason !== 'grant_revoked') wrongReason.push(`${answer.status} ${answer.reason}`);
                endToEnd[i]!.push(performance.now() - sent);
                return;
              }
              if (performance.now() - sent > 5_000) throw new Error(`sidecar ${i} still allows ${jtis[k]} 5 s after its XADD`);
            }
          }),
        );
      }
      await Promise.all(probes);
      const loadResults = await Promise.all(loads.map((l) => l.stop()));
      const after = await Promise.all(fleet.map(scrape));
      out(`\n### 1. lag to ${P.sidecars} sidecars under load: ${n} revocations XADDed at ${P.lagRate}/s, each sidecar serving ${P.loadRate} cached privileged req/s over ${P.loadConnections} mTLS connections`);
      out('| sidecar | load served (2xx/s, other) | lag id→applied p50 | p99 | max bucket | ≤ 100 ms | XADD → first refusal p50 | p99 | max |');
      out('|---|---|---:|---:|---:|---:|---:|---:|---:|');
      const perSidecar = [];
      for (const [i] of fleet.entries()) {
        const h = since(histogram(after[i]!, 'portcullis_revocation_lag_seconds'), histogram(before[i]!, 'portcullis_revocation_lag_seconds'));
        const e = endToEnd[i]!;
        const row = { lagP50: bucketPercentile(h, 50), lagP99: bucketPercentile(h, 99), lagMax: bucketPercentile(h, 100), within100: atMost(h, 0.1), count: h.count, meanLag: h.sum / h.count, e2eP50: percentile(e, 50), e2eP99: percentile(e, 99), e2eMax: Math.max(...e), load: loadResults[i]! };
        perSidecar.push(row);
        out(`| ${'abc'[i]} | ${(row.load.ok / row.load.seconds).toFixed(0)}/s, ${row.load.other} | ≤ ${ms(row.lagP50)} (mean ${ms(row.meanLag)}) | ≤ ${ms(row.lagP99)} | ≤ ${ms(row.lagMax)} | ${row.within100} of ${row.count} | ${row.e2eP50.toFixed(1)} ms | ${row.e2eP99.toFixed(1)} ms | ${row.e2eMax.toFixed(1)} ms |`);
      }
      if (wrongReason.length) out(`refused with another reason than grant_revoked: ${wrongReason.length} (${[...new Set(wrongReason)].join(', ')})`);
      figures.lag = { revocations: n, perSidecar, wrongReason: wrongReason.length };
    }

    if (scenarios.has('rate')) {
      const total = P.burstRate * P.burstSeconds;
      const before = await Promise.all(fleet.map(scrape));
      const loads = fleet.map((s) => steadyLoad(s, loadToken, P.loadRate, P.loadConnections));
      let published = 0;
      let tail = '0-0';
      let failed = 0;
      const behindMs: number[][] = fleet.map(() => []);
      let sampling = true;
      // Each second: how far each sidecar's last id read trails the newest id published.
      const sampler = (async () => {
        while (sampling) {
          await sleep(1_000);
          if (!sampling) break;
          const newest = tail;
          const ids = await Promise.all(fleet.map(lastIdRead));
          ids.forEach((id, i) => behindMs[i]!.push(Math.max(0, idTime(newest) - idTime(id ?? '0-0'))));
        }
      })();
      const t0 = performance.now();
      while (published < total) {
        // Every 10 ms, the entries due by now (node-redis pipelines the concurrent XADDs).
        const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * P.burstRate)) - published;
        if (due > 0) {
          const batch = Array.from({ length: due }, () => publisher.xAdd(stream, '*', { jti: randomUUID(), reason: 'bench-burst', by: 'bench' }));
          published += due;
          for (const result of await Promise.allSettled(batch)) {
            if (result.status === 'fulfilled') tail = result.value;
            else failed++;
          }
        }
        await sleep(10);
      }
      const publishSeconds = (performance.now() - t0) / 1000;
      const lastAddedAt = performance.now();
      sampling = false;
      const caughtUpMs = await Promise.all(
        fleet.map(async (s) => {
          for (;;) {
            if ((await lastIdRead(s)) === tail) return performance.now() - lastAddedAt;
            if (performance.now() - lastAddedAt > 10_000) return Number.POSITIVE_INFINITY;
            await sleep(5);
          }
        }),
      );
      await sampler;
      const loadResults = await Promise.all(loads.map((l) => l.stop()));
      const after = await Promise.all(fleet.map(scrape));
      const xlen = await publisher.xLen(stream);
      out(`\n### 2. ${total} revocations at ${P.burstRate}/s (published ${published} in ${publishSeconds.toFixed(2)} s = ${(published / publishSeconds).toFixed(0)}/s, ${failed} XADD failed), same steady load; stream length ${xlen}`);
      out('| sidecar | lag p50 | p99 | max bucket | ≤ 100 ms | behind the tail, sampled each second (max) | read the last entry after the last XADD | entries held | load served (2xx/s, other) |');
      out('|---|---:|---:|---:|---:|---:|---:|---:|---|');
      const perSidecar = [];
      for (const [i] of fleet.entries()) {
        const h = since(histogram(after[i]!, 'portcullis_revocation_lag_seconds'), histogram(before[i]!, 'portcullis_revocation_lag_seconds'));
        const row = { lagP50: bucketPercentile(h, 50), lagP99: bucketPercentile(h, 99), lagMax: bucketPercentile(h, 100), within100: atMost(h, 0.1), count: h.count, meanLag: h.sum / h.count, maxBehindMs: Math.max(0, ...behindMs[i]!), caughtUpMs: caughtUpMs[i]!, entries: gauge(after[i]!, 'portcullis_revocation_entries'), load: loadResults[i]! };
        perSidecar.push(row);
        out(`| ${'abc'[i]} | ≤ ${ms(row.lagP50)} (mean ${ms(row.meanLag)}) | ≤ ${ms(row.lagP99)} | ≤ ${ms(row.lagMax)} | ${row.within100} of ${row.count} | ${row.maxBehindMs} ms | ${Number.isFinite(row.caughtUpMs) ? `${row.caughtUpMs.toFixed(0)} ms` : 'NOT within 10 s: fell behind'} | ${row.entries} | ${(row.load.ok / row.load.seconds).toFixed(0)}/s, ${row.load.other} |`);
      }
      figures.rate = { total, published, publishSeconds, failed, xlen, perSidecar, keptUp: perSidecar.every((r) => Number.isFinite(r.caughtUpMs)) };
    }
    await Promise.all(fleet.map(stopSidecar));
  }

  if (scenarios.has('startup')) {
    const empty = `bench:revocations:empty:${randomUUID()}`;
    const full = `bench:revocations:full:${randomUUID()}`;
    const fillStarted = performance.now();
    for (let done = 0; done < P.startupEntries; done += 1_000) {
      await Promise.all(Array.from({ length: Math.min(1_000, P.startupEntries - done) }, () => publisher.xAdd(full, '*', { jti: randomUUID(), reason: 'bench-startup', by: 'bench' })));
    }
    const fillSeconds = (performance.now() - fillStarted) / 1000;
    const streamBytes = Number(await publisher.sendCommand(['MEMORY', 'USAGE', full, 'SAMPLES', '0']));

    async function measure(stream: string, name: string) {
      const s = await sidecar(name, stream);
      const probe = agent(1);
      // The first privileged request that gets an answer at all: before the first full read it must be refused.
      let first: { status: number; reason?: string; atMs: number } | undefined;
      const token = await grant(`startup-${randomUUID()}`);
      while (!first) {
        try {
          const answer = await post(probe, s, token);
          first = { ...answer, atMs: performance.now() - s.spawnedAt };
        } catch {
          if (s.child.exitCode !== null) throw new Error(`sidecar exited: ${s.stderrTail()}`);
          await sleep(5);
        }
      }
      const rssAtListen = rssOf(s.child.pid!).rss;
      const readyAt = await untilReady(s, 30_000, 5);
      const readyMs = readyAt - s.spawnedAt;
      await sleep(P.settleMs);
      const text = await scrape(s);
      const mem = rssOf(s.child.pid!);
      const result = { first, rssAtListen, readyMs, rss: mem.rss, peak: mem.peak, heapUsed: gauge(text, 'nodejs_heap_size_used_bytes'), entries: gauge(text, 'portcullis_revocation_entries') };
      await stopSidecar(s);
      return result;
    }
    const base = await measure(empty, 'startup-empty.yaml');
    const loaded = await measure(full, 'startup-full.yaml');
    const perEntry = (a: number, b: number) => ((b - a) / P.startupEntries).toFixed(0);
    out(`\n### 3. start-up with ${P.startupEntries} entries on the stream (filled in ${fillSeconds.toFixed(1)} s; Redis MEMORY USAGE ${(streamBytes / 2 ** 20).toFixed(1)} MiB = ${(streamBytes / P.startupEntries).toFixed(0)} bytes/entry with jti, reason, by)`);
    out('| stream | first privileged answer | spawn → /readyz 200 | entries held | RSS at first answer | RSS once settled (peak) | heap used |');
    out('|---|---|---:|---:|---:|---:|---:|');
    for (const [label, r] of [['empty', base], [`${P.startupEntries} entries`, loaded]] as const) {
      out(`| ${label} | ${r.first.status} ${r.first.reason ?? ''} at ${r.first.atMs.toFixed(0)} ms | ${r.readyMs.toFixed(0)} ms | ${r.entries} | ${(r.rssAtListen / 2 ** 20).toFixed(1)} MiB | ${(r.rss / 2 ** 20).toFixed(1)} MiB (${(r.peak / 2 ** 20).toFixed(1)}) | ${(r.heapUsed / 2 ** 20).toFixed(1)} MiB |`);
    }
    out(`memory per entry (against the empty stream): ${perEntry(base.rss, loaded.rss)} bytes RSS, ${perEntry(base.heapUsed, loaded.heapUsed)} bytes heap; read cost over the empty start: ${(loaded.readyMs - base.readyMs).toFixed(0)} ms`);
    figures.startup = { entries: P.startupEntries, streamBytes, base, loaded, rssPerEntry: (loaded.rss - base.rss) / P.startupEntries, heapPerEntry: (loaded.heapUsed - base.heapUsed) / P.startupEntries };
  }
  out(`\nload average at the end ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  if (flags.json) process.stdout.write(JSON.stringify(figures) + '\n');
} finally {
  await cleanup();
}
process.exit(0);
