// Builds everything one config load needs — routes, header rules, upstream pool, key sets, the
// PDP and the decision path — before any of it serves. A reload builds a new Generation and
// swaps it in whole; a failure here leaves the running one untouched.
import type { JWTVerifyGetKey } from 'jose';
import type { Config, IssuerConfig } from './config/schema.ts';
import { loadPolicy } from './config/load-policy.ts';
import { DecisionPath } from './decision/decision-path.ts';
import type { DecisionCache } from './decision/decision-cache.ts';
import type { Revocations } from './decision/revocations.ts';
import type { Pdp } from './pdp/pdp.ts';
import { AuthzenPdp } from './pdp/authzen.ts';
import { OpaPdp } from './pdp/opa.ts';
import { ExtAuthzPdp } from './pdp/ext-authz.ts';
import { DEFAULT_GUARD, GuardedPdp } from './pdp/guard.ts';
import { issuerKeys } from './tokens/key-set.ts';
import { shapeGrant } from './tokens/grant.ts';
import { shapePosture } from './tokens/posture.ts';
import { TokenVerifier } from './tokens/token-verifier.ts';
import { RequestHeaderFilter } from './forward/headers.ts';
import { Upstream } from './forward/upstream.ts';
import { RouteTable } from './routing/route-table.ts';
import { compileSpiffePatterns, type SpiffePatternSet } from './identity/spiffe-pattern.ts';
import type { Authorizer } from './decision/authorizer.ts';
import type { Metrics } from './telemetry/metrics.ts';
import type { AuditLog } from './telemetry/audit.ts';
import type { Logger } from './telemetry/logger.ts';

/** Everything built from one config load; replaced as a whole on reload. */
export interface Generation {
  readonly id: number;
  readonly config: Config;
  /** identity.allow, compiled: checked per request, so a reload applies to open connections too. */
  readonly allow: SpiffePatternSet;
  readonly routes: RouteTable;
  readonly headerFilter: RequestHeaderFilter;
  readonly upstream: Upstream;
  readonly authorizer: Authorizer;
  readonly pdp: Pdp;
}

export interface SharedState {
  readonly cache: DecisionCache;
  readonly revocations: Revocations;
  readonly metrics: Metrics;
  readonly audit: AuditLog;
  /** This sidecar's own SPIFFE ID (`grants.audience: self`). */
  readonly ownId: string;
  /** For PDP failures and circuit changes; none in tests that do not look. */
  readonly logger?: Logger;
}

const TOKEN_CACHE_ENTRIES = 10_000;

function keyMap(issuers: readonly IssuerConfig[], timeoutMs: number, metrics: Metrics): Map<string, JWTVerifyGetKey> {
  return new Map(issuers.map((issuer) => [issuer.issuer, issuerKeys(issuer, timeoutMs, metrics.jwksFetched)]));
}

/** The configured PDP; remote kinds are wrapped in the in-flight bound and circuit breaker. */
export function buildPdp(config: Config, ownId: string, logger?: Logger): Pdp {
  const { pdp } = config;
  switch (pdp.kind) {
    case 'embedded':
      return loadPolicy(pdp.policyFile!);
    case 'authzen':
      return new GuardedPdp(new AuthzenPdp(pdp.url!, pdp.timeout), DEFAULT_GUARD, logger);
    case 'opa':
      return new GuardedPdp(new OpaPdp(pdp.url!, pdp.timeout), DEFAULT_GUARD, logger);
    case 'ext-authz':
      return new GuardedPdp(new ExtAuthzPdp(pdp.address!, pdp.timeout, [config.grants.header, config.posture.header, config.intent.header], ownId), DEFAULT_GUARD, logger);
  }
}

export function buildGeneration(id: number, config: Config, shared: SharedState, pdp: Pdp = buildPdp(config, shared.ownId, shared.logger)): Generation {
  const jwksTimeout = Math.max(1000, config.pdp.timeout);
  const grants = new TokenVerifier({
    shape: shapeGrant,
    issuers: keyMap(config.grants.issuers, jwksTimeout, shared.metrics),
    audience: config.grants.audience === 'self' ? [shared.ownId] : config.grants.audience,
    clockSkewMs: config.grants.clockSkew,
    maxTokenBytes: config.limits.maxTokenBytes,
    requiredClaims: ['exp', 'iat', 'jti', 'sub', 'aud'],
    cacheEntries: TOKEN_CACHE_ENTRIES,
  });
  const postures = new TokenVerifier({
    shape: shapePosture,
    issuers: keyMap(config.posture.issuers, jwksTimeout, shared.metrics),
    audience: undefined,
    clockSkewMs: config.grants.clockSkew,
    maxTokenBytes: config.limits.maxTokenBytes,
    requiredClaims: ['exp', 'iat', 'sub'],
    cacheEntries: TOKEN_CACHE_ENTRIES,
  });
  const authorizer = new DecisionPath({
    generation: id,
    pdp,
    grants,
    postures,
    grantHeader: config.grants.header.toLowerCase(),
    postureHeader: config.posture.header.toLowerCase(),
    intentHeader: config.intent.header.toLowerCase(),
    postureMaxAgeMs: config.posture.maxAge,
    grantMaxLifetimeMs: config.grants.maxLifetime,
    allowTtlMs: config.cache.allowTtl,
    denyTtlMs: config.cache.denyTtl,
    pdpTimeoutMs: config.pdp.timeout,
    cache: shared.cache,
    revocations: shared.revocations,
    metrics: shared.metrics,
    audit: shared.audit,
    logger: shared.logger,
  });
  const generation: Generation = {
    id,
    config,
    allow: compileSpiffePatterns(config.identity.allow),
    routes: new RouteTable(config.routes, config.defaultRoute),
    headerFilter: new RequestHeaderFilter({ tokenHeaders: [config.grants.header, config.posture.header, config.intent.header] }),
    upstream: new Upstream({
      url: config.upstream.url,
      timeoutMs: config.upstream.timeout,
      connectTimeoutMs: config.upstream.connectTimeout,
      connections: config.upstream.connections,
      protocol: config.upstream.protocol,
    }),
    authorizer,
    pdp,
  };
  // Last, when nothing can throw any more: the revocation store is shared across reloads, and
  // keeps its entries by the limits of the config in force.
  shared.revocations.configure(
    { maxEntries: config.revocation.maxEntries, maxLifetimeMs: config.grants.maxLifetime, clockSkewMs: config.grants.clockSkew },
    shared.metrics.revocationEntries,
  );
  return generation;
}
