// Every metric of SPEC "Metrics", on a registry per proxy instance. Labels are bounded by
// construction: route names from config, reasons and outcomes from fixed unions; never a path,
// an ID or a token.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

// Decisions on a cache hit take microseconds; PDP and upstream calls take milliseconds.
const DECISION_BUCKETS = [0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25];
const REMOTE_BUCKETS = [0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export type Metrics = ReturnType<typeof createMetrics>;

export function createMetrics(options: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    requests: new Counter({ name: 'portcullis_requests_total', help: 'Requests answered, by route and status code.', labelNames: ['route', 'code'] as const, registers }),
    decisions: new Counter({ name: 'portcullis_decisions_total', help: 'Authorization decisions for privileged routes.', labelNames: ['route', 'decision', 'reason', 'source'] as const, registers }),
    decisionDuration: new Histogram({ name: 'portcullis_decision_duration_seconds', help: 'Time to reach a decision, by source.', labelNames: ['source'] as const, buckets: DECISION_BUCKETS, registers }),
    pdpRequests: new Counter({ name: 'portcullis_pdp_requests_total', help: 'PDP evaluations (embedded ones too), by outcome.', labelNames: ['outcome'] as const, registers }),
    pdpDuration: new Histogram({ name: 'portcullis_pdp_duration_seconds', help: 'PDP evaluation time.', buckets: REMOTE_BUCKETS, registers }),
    cacheEntries: new Gauge({ name: 'portcullis_cache_entries', help: 'Entries in the decision cache.', registers }),
    cacheHits: new Counter({ name: 'portcullis_cache_hits_total', help: 'Decision cache hits.', registers }),
    cacheMisses: new Counter({ name: 'portcullis_cache_misses_total', help: 'Decision cache misses.', registers }),
    cacheEvictions: new Counter({ name: 'portcullis_cache_evictions_total', help: 'Decision cache entries evicted to stay within maxEntries.', registers }),
    grantExpired: new Counter({ name: 'portcullis_grant_expired_total', help: 'Requests refused because the grant had expired.', registers }),
    revocations: new Counter({ name: 'portcullis_revocations_total', help: 'Revocations received on the admin API.', registers }),
    tlsHandshakeFailures: new Counter({ name: 'portcullis_tls_handshake_failures_total', help: 'Connections refused during or right after the TLS handshake.', labelNames: ['reason'] as const, registers }),
    svidExpiry: new Gauge({ name: 'portcullis_svid_expiry_timestamp_seconds', help: "Expiry of this sidecar's own X509-SVID (Unix seconds).", registers }),
    svidReloads: new Counter({ name: 'portcullis_svid_reloads_total', help: 'SVID and bundle file changes, by result.', labelNames: ['result'] as const, registers }),
    upstreamDuration: new Histogram({ name: 'portcullis_upstream_duration_seconds', help: 'Time to the upstream response headers.', buckets: REMOTE_BUCKETS, registers }),
    auditDropped: new Counter({ name: 'portcullis_audit_dropped_total', help: 'Audit lines dropped because the audit file fell too far behind.', registers }),
    badRequests: new Counter({ name: 'portcullis_bad_requests_total', help: 'Requests refused before routing (bad path, malformed or oversized request).', labelNames: ['reason'] as const, registers }),
  };
}

/**
 * Memoised label children: prom-client's `labels()` hashes its arguments on every call, which
 * costs more than a cache-hit decision. Label sets are few and fixed, so each is resolved once.
 */
export class LabelledChildren<T> {
  private readonly children = new Map<string, T>();
  private readonly make: (labels: string[]) => T;

  constructor(make: (labels: string[]) => T) {
    this.make = make;
  }

  get(a: string, b = '', c = '', d = ''): T {
    const key = a + '\u0000' + b + '\u0000' + c + '\u0000' + d;
    let child = this.children.get(key);
    if (!child) this.children.set(key, (child = this.make([a, b, c, d])));
    return child;
  }
}
