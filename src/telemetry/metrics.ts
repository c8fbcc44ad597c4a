// Every metric of SPEC "Metrics", on a registry per proxy instance. Labels are bounded by
// construction: route names from config, reasons and outcomes from fixed unions; never a path,
// an ID or a token.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { FastHistogram } from './fast-histogram.ts';
import { VERSION } from '../version.ts';

// Decisions on a cache hit take microseconds; PDP and upstream calls take milliseconds. The top
// buckets reach past any sane pdp.timeout (default 250ms), so a slow PDP shows where it sits
// instead of piling into +Inf and making every quantile above 250ms read as 250ms.
const DECISION_BUCKETS = [0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
// Revocation lag (entry id time → applied): the goal is 100 ms p99 (SPEC "Fleet-wide revocation");
// the top buckets show a sidecar catching up after an outage.
const LAG_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const REMOTE_BUCKETS = [0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * prom-client's gauges of the same counts as `nodejs_active_{handles,requests,resources}{type}`,
 * named `_total` although they are gauges (`promtool check metrics` flags them). Dropped: the
 * per-type gauges remain, and `sum()` of one is its total.
 */
const MISNAMED_DEFAULT_METRICS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** `portcullis_pdp_circuit_state`: the remote PDP's circuit breaker, as a number. */
export const CIRCUIT_STATE = { closed: 0, 'half-open': 1, open: 2 } as const;

export type Metrics = ReturnType<typeof createMetrics>;

export function createMetrics(options: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (options.defaultMetrics !== false) {
    collectDefaultMetrics({ register: registry });
    for (const name of MISNAMED_DEFAULT_METRICS) registry.removeSingleMetric(name);
  }
  const registers = [registry];
  const buildInfo = new Gauge({ name: 'portcullis_build_info', help: 'Always 1; the version label says which Portcullis this is.', labelNames: ['version'] as const, registers });
  buildInfo.set({ version: VERSION }, 1);
  const configReloads = new Counter({ name: 'portcullis_config_reloads_total', help: 'Config reloads (admin, SIGHUP, reload.watch), by result: error means refused, the running config kept serving.', labelNames: ['result'] as const, registers });
  // Both results exist from the start, so rate() and increase() see the first failure.
  for (const result of ['ok', 'error'] as const) configReloads.inc({ result }, 0);
  const jwksFetches = new Counter({ name: 'portcullis_jwks_fetches_total', help: 'Fetches of remote issuer key sets (jwksUrl), by result.', labelNames: ['result'] as const, registers });
  for (const result of ['ok', 'error', 'timeout'] as const) jwksFetches.inc({ result }, 0);
  const streamsCut = batchedCounter({ name: 'portcullis_streams_cut_total', help: 'Open exchanges (streaming responses, HTTP/2 streams, gRPC calls, tunnels) cut when their grant or posture expired or was revoked.', labelNames: ['reason'], registers });
  // Every SPEC cut reason exists from the start, so increase() sees the first cut.
  for (const reason of ['grant_expired', 'grant_revoked', 'posture_stale', 'posture_revoked']) streamsCut.counter.inc({ reason }, 0);
  return {
    registry,
    configReloads,
    configLastReloadSuccess: new Gauge({ name: 'portcullis_config_last_reload_success_timestamp_seconds', help: 'When the running config was last loaded successfully, at start or on a reload (Unix seconds).', registers }),
    activeConnections: liveGauge({ name: 'portcullis_active_connections', help: 'Client connections open on the mTLS listener (handshake completed).', registers }),
    requestsInFlight: liveGauge({ name: 'portcullis_requests_in_flight', help: 'HTTP requests being handled: from admission until their response is finished or cut (upgrades count in portcullis_open_tunnels once switched).', registers }),
    openTunnels: liveGauge({ name: 'portcullis_open_tunnels', help: 'Upgraded connections (WebSocket…) relayed to the service right now.', registers }),
    pdpCircuit: readGauge({ name: 'portcullis_pdp_circuit_state', help: "The remote PDP's circuit breaker: 0 closed, 1 half-open (one probe), 2 open (failing fast). Always 0 for the embedded PDP.", registers }),
    /** For the key sets: one fetch's result. */
    jwksFetched: (result: 'ok' | 'error' | 'timeout') => jwksFetches.inc({ result }),
    requests: batchedCounter({ name: 'portcullis_requests_total', help: 'Requests answered, by route, status code (for gRPC calls: the grpc-status) and protocol (http1, h2, grpc).', labelNames: ['route', 'code', 'protocol'], registers }),
    streamsCut,
    decisions: batchedCounter({ name: 'portcullis_decisions_total', help: 'Authorization decisions for privileged routes.', labelNames: ['route', 'decision', 'reason', 'source'], registers }),
    decisionDuration: new FastHistogram({ name: 'portcullis_decision_duration_seconds', help: 'Time to reach a decision, by source.', labelName: 'source', buckets: DECISION_BUCKETS, registers }),
    pdpRequests: new Counter({ name: 'portcullis_pdp_requests_total', help: 'PDP evaluations (embedded ones too), by outcome.', labelNames: ['outcome'] as const, registers }),
    pdpDuration: new Histogram({ name: 'portcullis_pdp_duration_seconds', help: 'PDP evaluation time.', buckets: REMOTE_BUCKETS, registers }),
    cacheEntries: new Gauge({ name: 'portcullis_cache_entries', help: 'Entries in the decision cache.', registers }),
    cacheHits: batchedCounter({ name: 'portcullis_cache_hits_total', help: 'Decision cache hits.', labelNames: [], registers }),
    cacheMisses: batchedCounter({ name: 'portcullis_cache_misses_total', help: 'Decision cache misses.', labelNames: [], registers }),
    // SPEC step 8: requests a `mode: shadow` route forwarded although the decision was a deny.
    rpcDecisions: batchedCounter({ name: 'portcullis_rpc_decisions_total', help: 'Calls decided on JSON-RPC routes (MCP tools), by route, the tool or resource named (params.name or params.uri; at most 64 names per route, the rest as "other") and decision.', labelNames: ['route', 'tool', 'decision'], registers }),
    shadowDenials: batchedCounter({ name: 'portcullis_shadow_denials_total', help: 'Requests on mode: shadow routes that the decision denied and the proxy forwarded anyway, by route and deny reason.', labelNames: ['route', 'reason'], registers }),
    // SPEC step 4: which of min(PDP ttl, allowTtl, route cacheTtl, grant exp, posture expiry) set a cached allow's lifetime.
    cacheTtlBound: batchedCounter({ name: 'portcullis_cache_ttl_bound_total', help: 'Allows stored in the decision cache, by route and the bound that set their lifetime (pdp, allow_ttl, route_ttl, grant_exp, posture).', labelNames: ['route', 'bound'], registers }),
    cacheEvictions: new Counter({ name: 'portcullis_cache_evictions_total', help: 'Decision cache entries evicted to stay within maxEntries.', registers }),
    grantExpired: new Counter({ name: 'portcullis_grant_expired_total', help: 'Requests refused because the grant had expired.', registers }),
    revocations: new Counter({ name: 'portcullis_revocations_total', help: 'Revocations applied on this sidecar, whatever their origin (admin API, bus, signals).', registers }),
    revocationEntries: new Gauge({ name: 'portcullis_revocation_entries', help: 'Revocations held in memory (jti, sub and posture_sub entries); at revocation.maxEntries privileged requests refuse.', registers }),
    revocationMaxEntries: new Gauge({ name: 'portcullis_revocation_max_entries', help: 'revocation.maxEntries: at this many entries privileged requests refuse with revocation_unavailable.', registers }),
    revocationBusUp: readGauge({ name: 'portcullis_revocation_bus_up', help: 'With revocation.source redis: 1 while the stream has been read within revocation.maxStaleness, else 0 (privileged requests refuse). Always 1 with source local.', registers }),
    revocationBusStaleness: readGauge({ name: 'portcullis_revocation_bus_staleness_seconds', help: 'Seconds since the last successful read of the revocation stream (0 with source local).', registers }),
    revocationBusMaxStaleness: new Gauge({ name: 'portcullis_revocation_bus_max_staleness_seconds', help: 'revocation.maxStaleness: at this staleness privileged requests refuse.', registers }),
    revocationLag: new Histogram({ name: 'portcullis_revocation_lag_seconds', help: 'Revocation lag: from the time in the entry id to applied on this sidecar (entries read live, not the backlog read at start).', buckets: LAG_BUCKETS, registers }),
    revocationBusRead: new Counter({ name: 'portcullis_revocation_bus_entries_read_total', help: 'Entries read from the revocation stream (applied, already held, or skipped).', registers }),
    revocationBusSkipped: new Counter({ name: 'portcullis_revocation_bus_entries_skipped_total', help: 'Stream entries skipped as malformed (no known field, a bad SPIFFE ID, a non-numeric exp); each is logged once with its id.', registers }),
    revocationBusGaps: new Counter({ name: 'portcullis_revocation_bus_gaps_total', help: 'Times the stream had lost entries this sidecar had not read (trimmed past retain, or Redis restarted empty); what was held is kept.', registers }),
    tlsHandshakeFailures: new Counter({ name: 'portcullis_tls_handshake_failures_total', help: 'Connections refused during or right after the TLS handshake.', labelNames: ['reason'] as const, registers }),
    svidExpiry: new Gauge({ name: 'portcullis_svid_expiry_timestamp_seconds', help: "Expiry of this sidecar's own X509-SVID (Unix seconds).", registers }),
    svidReloads: new Counter({ name: 'portcullis_svid_reloads_total', help: 'SVID and bundle file changes, by result.', labelNames: ['result'] as const, registers }),
    upstreamDuration: new FastHistogram({ name: 'portcullis_upstream_duration_seconds', help: 'Time to the upstream response headers.', buckets: REMOTE_BUCKETS, registers }),
    accessLogDropped: new Counter({ name: 'portcullis_access_log_dropped_total', help: 'Access log lines dropped because the access log file fell too far behind.', registers }),
    auditDropped: new Counter({ name: 'portcullis_audit_dropped_total', help: 'Audit lines dropped because the audit file fell too far behind.', registers }),
    // event: session-revoked | credential-change | device-compliance-change | other (a SET of
    // another event) | unknown (refused before an event could be read); result: accepted | an
    // RFC 8935 err code | unavailable (503, the transmitter sends it again).
    signalsReceived: new Counter({ name: 'portcullis_signals_received_total', help: 'Security Event Tokens pushed to the Shared Signals receiver, by CAEP event and result (accepted, an RFC 8935 err code, or unavailable).', labelNames: ['event', 'result'] as const, registers }),
    badRequests: new Counter({ name: 'portcullis_bad_requests_total', help: 'Requests refused before routing (bad path, malformed or oversized request).', labelNames: ['reason'] as const, registers }),
  };
}

/** A gauge the request path moves with plain additions on `n`; read when scraped. */
export interface LiveCount {
  n: number;
}

function liveGauge(config: { name: string; help: string; registers: Registry[] }): LiveCount {
  const live: LiveCount = { n: 0 };
  new Gauge({
    ...config,
    collect() {
      this.set(live.n);
    },
  });
  return live;
}

/** A gauge whose owner supplies `read` (e.g. the current generation's PDP); 0 until then. */
export interface ReadGauge {
  read: () => number;
}

function readGauge(config: { name: string; help: string; registers: Registry[] }): ReadGauge {
  const source: ReadGauge = { read: () => 0 };
  new Gauge({
    ...config,
    collect() {
      this.set(source.read());
    },
  });
  return source;
}

/** One label set of a BatchedCounter: the request path adds to `n`. */
export interface CounterCell {
  n: number;
}

/**
 * A counter for the request path: an increment is a plain addition on a memoised cell, and the
 * sums are handed to prom-client when it is scraped (its `collect` hook). prom-client's own
 * `inc()` hashes the label object on every call, which costs more than a cache-hit decision.
 * Scrapes see exact counts: every cell is flushed before the exposition is written.
 */
export class BatchedCounter {
  readonly counter: Counter<string>;
  private readonly labelNames: readonly string[];
  /** Every cell, for flush(). */
  private readonly cells: (CounterCell & { labels: Record<string, string> })[] = [];
  /**
   * The cells by label value, one Map level per label: the request path's values are strings it
   * already holds (a route name from the config, a status code, a protocol), whose hashes V8
   * keeps, so a lookup joins nothing. A key joined from the four values was a fresh string to
   * build, flatten and hash on every request.
   */
  private readonly tree = new Map<string, Map<string, Map<string, Map<string, CounterCell & { labels: Record<string, string> }>>>>();

  constructor(counter: Counter<string>, labelNames: readonly string[]) {
    this.counter = counter;
    this.labelNames = labelNames;
  }

  /** The cell of a label set (values in labelNames order), created on first use. */
  cell(a = '', b = '', c = '', d = ''): CounterCell {
    let byB = this.tree.get(a);
    if (byB === undefined) this.tree.set(a, (byB = new Map()));
    let byC = byB.get(b);
    if (byC === undefined) byB.set(b, (byC = new Map()));
    let byD = byC.get(c);
    if (byD === undefined) byC.set(c, (byD = new Map()));
    let cell = byD.get(d);
    if (!cell) {
      const values = [a, b, c, d];
      const labels = Object.fromEntries(this.labelNames.map((name, i) => [name, values[i]!]));
      byD.set(d, (cell = { n: 0, labels }));
      this.cells.push(cell);
    }
    return cell;
  }

  /** For rare events (admin actions, refusals): no need to keep a cell reference. */
  inc(a = '', b = '', c = '', d = ''): void {
    this.cell(a, b, c, d).n++;
  }

  flush(): void {
    for (const cell of this.cells) {
      if (cell.n === 0) continue;
      if (this.labelNames.length === 0) this.counter.inc(cell.n);
      else this.counter.inc(cell.labels, cell.n);
      cell.n = 0;
    }
  }
}

function batchedCounter(config: { name: string; help: string; labelNames: string[]; registers: Registry[] }): BatchedCounter {
  // The counter's collect hook needs the batch, and the batch needs the counter.
  const holder: { batch?: BatchedCounter } = {};
  const counter = new Counter({
    ...config,
    collect() {
      holder.batch?.flush();
    },
  });
  holder.batch = new BatchedCounter(counter, config.labelNames);
  return holder.batch;
}
