// One running Portcullis: the proxy, its SVID source, the decision state shared across reloads,
// and the admin listener. Used by `portcullis run`, the demo and the integration tests alike.
import type { Server } from 'node:http';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { loadConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { createAdminServer } from '../admin/admin-server.ts';
import { FileSvidSource, type SvidSource } from '../identity/svid-source.ts';
import { WorkloadApiSvidSource } from '../identity/workload-api-source.ts';
import { DecisionCache } from '../decision/decision-cache.ts';
import { DecisionPath } from '../decision/decision-path.ts';
import { Revocations } from '../decision/revocations.ts';
import { buildGeneration, type SharedState } from '../generation.ts';
import { Proxy } from '../server.ts';
import { CIRCUIT_STATE, createMetrics, type Metrics } from '../telemetry/metrics.ts';
import { createLogger, type Logger } from '../telemetry/logger.ts';
import { createAuditLog, type AuditLog } from '../telemetry/audit.ts';
import { createAccessLog } from '../telemetry/access-log.ts';
import { parseEntry, entryTargets } from '../revocation/entry.ts';
import { createApplier, type RevocationTargets } from '../revocation/applier.ts';
import { createPublisher } from '../revocation/publish.ts';
// The Redis client (600 modules, ~28 MiB of RSS) loads only when revocation.source is redis.
import type { RedisRevocationBus } from '../revocation/redis-bus.ts';
// The Shared Signals receiver (an HTTP server of its own) loads only when `signals` is configured.
import type { SignalsReceiver } from '../revocation/signals-receiver.ts';
import { GuardedPdp } from '../pdp/guard.ts';
import type { PdpInput } from '../pdp/pdp.ts';
import { VERSION } from '../version.ts';
import { logDrained } from './log-drain.ts';
import { readinessLog } from './readiness-log.ts';

/** What a readiness probe asks a remote PDP: any answer, allow or deny, proves it is up. */
function readinessProbeInput(ownId: string): PdpInput {
  return { subject: ownId, posture: undefined, action: 'portcullis.readiness', method: 'GET', resource: 'portcullis:readiness', route: 'readiness', sensitivity: 'low', grant: undefined, intent: undefined, requestId: 'readiness-probe', nowMs: Date.now() };
}

export interface InstanceOptions {
  readonly logger?: Logger;
  /** How often SVID and bundle files are checked for changes. */
  readonly svidPollMs?: number;
  /** How long to wait for the first SVID from the Workload API. */
  readonly svidWaitMs?: number;
  /** The config file, for reloads. */
  readonly configFile?: string;
  readonly audit?: AuditLog;
}

export interface Instance {
  readonly proxy: Proxy;
  readonly admin: Server;
  readonly metrics: Metrics;
  readonly shared: SharedState;
  readonly svidSource: SvidSource;
  readonly proxyPort: number;
  readonly adminPort: number;
  /** The revocation bus (revocation.source: redis), if any. */
  readonly bus: RedisRevocationBus | undefined;
  /** The Shared Signals receiver's port (`signals`), if configured. */
  readonly signalsPort: number | undefined;
  reload(): { ok: true; generation: number } | { ok: false; error: string };
  close(): Promise<void>;
}

function listenAdmin(admin: Server, port: number, address: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    admin.once('error', reject);
    admin.listen(port, address, () => {
      admin.off('error', reject);
      const bound = admin.address();
      resolve(typeof bound === 'object' && bound ? bound.port : port);
    });
  });
}

/** Files are polled; the Workload API streams. Either way the first good set is loaded here. */
async function openSvidSource(config: Config, options: InstanceOptions): Promise<SvidSource> {
  const { identity } = config;
  if (identity.source === 'workload-api') {
    const source = new WorkloadApiSvidSource({ socket: identity.workloadApiSocket!, trustDomains: identity.trustDomains });
    const ignoreUntilReady = () => undefined; // bad responses before the first good one are in lastProblem
    source.on('error', ignoreUntilReady);
    try {
      await source.ready(options.svidWaitMs ?? 30_000);
    } catch (error) {
      source.stop();
      throw error;
    } finally {
      source.off('error', ignoreUntilReady);
    }
    return source;
  }
  const source = new FileSvidSource({
    certFile: identity.certFile!,
    keyFile: identity.keyFile!,
    bundleFile: identity.bundleFile!,
    trustDomains: identity.trustDomains,
    bundles: identity.bundles,
  });
  source.start(options.svidPollMs ?? 1000);
  return source;
}

export async function startInstance(config: Config, options: InstanceOptions = {}): Promise<Instance> {
  const logger = options.logger ?? createLogger();
  const metrics = createMetrics();
  const svidSource = await openSvidSource(config, options);
  const shared: SharedState = {
    cache: new DecisionCache(config.cache.maxEntries, metrics),
    revocations: new Revocations(),
    metrics,
    audit: options.audit ?? createAuditLog(config.audit.file, () => metrics.auditDropped.inc()),
    ownId: svidSource.material.id.uri,
    logger,
  };
  let generationId = 1;
  const accessLog = createAccessLog(config.accessLog.file, () => metrics.accessLogDropped.inc());
  const proxy = new Proxy({ generation: buildGeneration(generationId, config, shared), identity: svidSource.material, metrics, logger, audit: shared.audit, accessLog });
  // The config serving now was loaded now; the circuit is the current generation's PDP's.
  metrics.configLastReloadSuccess.set(Date.now() / 1000);
  metrics.pdpCircuit.read = () => {
    const pdp = proxy.currentGeneration.pdp;
    return pdp instanceof GuardedPdp ? CIRCUIT_STATE[pdp.circuit] : CIRCUIT_STATE.closed;
  };
  svidSource.on('update', (material) => {
    proxy.useIdentity(material);
    metrics.svidReloads.inc({ result: 'ok' });
    logger.info({ spiffe_id: material.id.uri, not_after: material.notAfter.toISOString() }, 'SVID and bundles reloaded');
  });
  svidSource.on('error', (error) => {
    metrics.svidReloads.inc({ result: 'error' });
    logger.warn({ detail: error.message }, 'SVID or bundle change refused; keeping the last good set');
  });

  const decisionPath = () => proxy.currentGeneration.authorizer as DecisionPath;

  // Revocations (SPEC "Fleet-wide revocation"): every origin applies an entry through one
  // applier, and publishes through one seam (src/revocation/publish.ts).
  const targets: RevocationTargets = {
    revokeGrant: (jti, atMs, expMs) => decisionPath().revokeGrant(jti, atMs, expMs),
    revokeSubject: (sub, atMs) => decisionPath().revokeSubject(sub, atMs),
    revokePosture: (sub, atMs) => decisionPath().revokePosture(sub, atMs),
    cutOpen: (revoked) => proxy.cutOpen(revoked),
    inForce: (atMs, expMs, now) => shared.revocations.inForce(atMs, expMs, now),
  };
  const applyRevocation = createApplier({ targets, audit: shared.audit, metrics, logger });
  const rc = config.revocation;
  metrics.revocationMaxEntries.set(rc.maxEntries);
  let bus: RedisRevocationBus | undefined;
  if (rc.source === 'redis') {
    // At start nothing privileged is decided until the stream has been read whole (SPEC step 7).
    shared.revocations.freshUntilMs = 0;
    const [{ RedisRevocationBus }, { readPasswordFile }] = await Promise.all([import('../revocation/redis-bus.ts'), import('../revocation/redis-connection.ts')]);
    bus = new RedisRevocationBus({
      url: rc.url!,
      password: rc.passwordFile !== undefined ? readPasswordFile(rc.passwordFile) : undefined,
      connectTimeoutMs: rc.connectTimeout,
      stream: rc.stream,
      maxStalenessMs: rc.maxStaleness,
      retainMs: rc.retain,
      onEntry: (entry, id, atMs, live) => void applyRevocation(entry, 'bus', { id, atMs, live }),
      onFresh: (until) => (shared.revocations.freshUntilMs = until),
      logger,
      metrics,
    });
    metrics.revocationBusMaxStaleness.set(rc.maxStaleness / 1000);
    metrics.revocationBusUp.read = () => (Date.now() < bus!.freshUntilMs() ? 1 : 0);
    metrics.revocationBusStaleness.read = () => (bus!.lastReadMs ? (Date.now() - bus!.lastReadMs) / 1000 : 0);
    bus.start();
  } else {
    metrics.revocationBusUp.read = () => 1;
  }
  const publishRevocation = createPublisher(applyRevocation, bus);
  // SPEC "Shared Signals receiver": CAEP events publish through the same seam, origin signals.
  let signals: SignalsReceiver | undefined;
  try {
    if (config.signals) {
      const { createSignalsReceiver } = await import('../revocation/signals-receiver.ts');
      signals = createSignalsReceiver({ config: config.signals, publish: publishRevocation, metrics, logger, jwksTimeoutMs: Math.max(1000, config.pdp.timeout) });
    }
  } catch (error) {
    await bus?.stop();
    svidSource.stop();
    throw error;
  }
  const reload: Instance['reload'] = () => {
    if (!options.configFile) {
      metrics.configReloads.inc({ result: 'error' });
      return { ok: false, error: 'no config file to reload from' };
    }
    try {
      const next = buildGeneration(generationId + 1, loadConfig(options.configFile), shared);
      generationId++;
      const previous = proxy.currentGeneration;
      proxy.useGeneration(next);
      // Keys carry the generation, so old decisions can never be served; free their memory now.
      shared.cache.flush();
      setTimeout(() => {
        void previous.upstream.close().catch(() => undefined);
        if (previous.pdp !== next.pdp) void previous.pdp.close?.().catch(() => undefined);
      }, 30_000).unref();
      metrics.configReloads.inc({ result: 'ok' });
      metrics.configLastReloadSuccess.set(Date.now() / 1000);
      metrics.revocationMaxEntries.set(next.config.revocation.maxEntries);
      logger.info({ generation: generationId }, 'config reloaded');
      return { ok: true, generation: generationId };
    } catch (error) {
      metrics.configReloads.inc({ result: 'error' });
      logger.warn({ detail: (error as Error).message }, 'config reload refused; the running config keeps serving');
      return { ok: false, error: (error as Error).message };
    }
  };

  // Readiness: SVID loaded and config valid (both true once we get here), and the PDP has
  // answered. A remote PDP is probed at start and every few seconds while it is not healthy.
  const pdpHealth = (): string | undefined => {
    const pdp = proxy.currentGeneration.pdp;
    if (!(pdp instanceof GuardedPdp)) return undefined;
    if (!pdp.answered) return `the ${pdp.kind} PDP has not answered yet`;
    if (pdp.circuit === 'open') return `the ${pdp.kind} PDP is failing (circuit open)`;
    return undefined;
  };
  const probe = (): void => {
    const pdp = proxy.currentGeneration.pdp;
    if (!(pdp instanceof GuardedPdp) || pdp.healthy) return;
    pdp.evaluate(readinessProbeInput(shared.ownId)).catch(() => undefined);
  };
  // Readiness changes are logged (an SRE paged by a failing probe finds why in the log): once at
  // start, then whenever ready flips or the reason's kind changes (not its figures: "not read
  // for 4.1s" is the state "not read for 2.1s" was), seen by the prober or by a /readyz call;
  // while not ready, a reminder at most once a minute (src/cli/readiness-log.ts).
  let shuttingDown = false;
  const logReadiness = readinessLog(logger);
  const notReadyReason = (): string | undefined => {
    const reason = shuttingDown ? 'shutting down' : (pdpHealth() ?? bus?.notReadyReason());
    logReadiness(reason);
    return reason;
  };
  probe();
  const prober = setInterval(() => {
    probe();
    notReadyReason();
  }, 2_000);
  prober.unref();

  // reload.watch: poll the config and policy files' contents; a change triggers the same
  // validated reload as SIGHUP (a broken file is refused and logged once per content).
  const watchedDigest = (): string => {
    const config = proxy.currentGeneration.config;
    const hash = createHash('sha256');
    for (const file of [options.configFile, config.pdp.kind === 'embedded' ? config.pdp.policyFile : undefined]) {
      if (!file) continue;
      try {
        hash.update(readFileSync(file));
      } catch {
        hash.update('missing');
      }
      hash.update('\0');
    }
    return hash.digest('hex');
  };
  let lastWatched = watchedDigest();
  const watcher = setInterval(() => {
    if (!options.configFile || !proxy.currentGeneration.config.reload.watch) return;
    const digest = watchedDigest();
    if (digest === lastWatched) return;
    lastWatched = digest;
    const result = reload();
    if (result.ok) lastWatched = watchedDigest();
  }, config.reload.interval);
  watcher.unref();

  const admin = createAdminServer({
    metrics,
    address: config.admin.address,
    notReadyReason,
    routes: {
      'POST /admin/revoke': async (body) => {
        // {"jti"}, {"sub"}, {"posture_sub"} (several: all revoked), with reason and by if wanted;
        // never a silently ignored field.
        if (body === null || typeof body !== 'object' || Array.isArray(body)) return [400, { error: 'expected {"jti": "..."}, {"sub": "spiffe://..."} or {"posture_sub": "spiffe://..."}' }];
        const parsed = parseEntry(body as Record<string, unknown>, true);
        if (!parsed.ok) return [400, { error: parsed.problem.startsWith('no jti') ? 'expected {"jti": "..."}, {"sub": "spiffe://..."} or {"posture_sub": "spiffe://..."}' : parsed.problem }];
        const published = await publishRevocation(parsed.entry, 'admin');
        const revoked = entryTargets(parsed.entry);
        // cut_exchanges: open streams, calls and tunnels it ended; closed_tunnels: the same count, its older name.
        const answer = { revoked, entry_id: published.id, fleet: published.ok && published.fleet, purged_decisions: published.purged, cut_exchanges: published.cut, closed_tunnels: published.cut };
        // Applied here, but the fleet was not told: the caller must know (and retry).
        if (!published.ok) return [503, { error: `${published.problem}; applied on this sidecar only`, ...answer }];
        return [200, answer];
      },
      'GET /admin/revocations': () => {
        const held = shared.revocations.list(1_000);
        return [
          200,
          {
            source: proxy.currentGeneration.config.revocation.source,
            entries: shared.revocations.size,
            max_entries: shared.revocations.maxEntries,
            full: shared.revocations.full,
            by_kind: { jti: held.jti, sub: held.sub, posture_sub: held.posture_sub },
            // The first 1,000 in force, oldest first: the counts above are complete.
            in_force: held.entries,
            bus: bus ? bus.describe() : null,
          },
        ];
      },
      'POST /admin/cache/flush': () => {
        const flushed = shared.cache.flush();
        metrics.cacheEntries.set(0);
        return [200, { flushed }];
      },
      'GET /admin/cache': () => {
        const config = proxy.currentGeneration.config;
        const privileged = config.routes.filter((r) => r.privileged);
        // Per route (SPEC "Admin listener"): entries, hits, misses, hit ratio, and how many stored
        // allows each TTL bound limited: the evidence for tuning allowTtl and cacheTtl.
        const perRoute = shared.cache.routeReport(privileged.map((r) => r.name));
        return [
          200,
          {
            ...shared.cache.stats(),
            maxEntries: config.cache.maxEntries,
            allowTtlMs: config.cache.allowTtl,
            denyTtlMs: config.cache.denyTtl,
            routes: perRoute.map((stats, i) => ({ ...stats, mode: privileged[i]!.mode, effectiveAllowTtlMs: Math.min(config.cache.allowTtl, privileged[i]!.cacheTtl ?? Infinity) })),
          },
        ];
      },
      'POST /admin/reload': () => {
        const result = reload();
        return result.ok ? [200, result] : [400, result];
      },
    },
  });
  const proxyPort = await proxy.listen(config.listen.port, config.listen.address);
  const adminPort = await listenAdmin(admin, config.admin.port, config.admin.address);
  const signalsPort = await signals?.listen();
  // One line that says what this process is: an operator reading a crash loop needs no other.
  logger.info(
    {
      version: VERSION,
      config: options.configFile,
      spiffe_id: svidSource.material.id.uri,
      svid_not_after: svidSource.material.notAfter.toISOString(),
      listen: `${config.listen.address}:${proxyPort}`,
      admin: `${config.admin.address}:${adminPort}`,
      signals: signals ? `${config.signals!.listen.address}:${signalsPort}${config.signals!.path}` : undefined,
      pdp: config.pdp.kind,
      routes: config.routes.length,
      upstream: config.upstream.url,
    },
    'portcullis is serving',
  );
  notReadyReason();

  return {
    proxy,
    admin,
    metrics,
    shared,
    svidSource,
    proxyPort,
    adminPort,
    bus,
    signalsPort,
    reload,
    async close() {
      // Readiness turns 503 first, then the listener drains within limits.shutdownTimeout.
      shuttingDown = true;
      notReadyReason();
      svidSource.stop();
      clearInterval(prober);
      clearInterval(watcher);
      shared.revocations.stop();
      // No SET is taken once the bus it would publish to is closing.
      await signals?.close();
      await bus?.stop();
      logger.info({ deadline_ms: proxy.currentGeneration.config.limits.shutdownTimeout }, 'draining');
      await proxy.close(proxy.currentGeneration.config.limits.shutdownTimeout);
      await new Promise<void>((resolve) => {
        admin.close(() => resolve());
        admin.closeAllConnections();
      });
      await proxy.currentGeneration.upstream.close();
      await proxy.currentGeneration.pdp.close?.();
      await shared.audit.flush();
      await accessLog?.flush();
      logger.info('stopped');
      // Every line written, in order, before the caller exits: "stopped" is the last one.
      logger.flush();
      await logDrained(logger);
    },
  };
}
