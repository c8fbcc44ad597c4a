// The decision path, per privileged request (SPEC "The decision, per request", steps 2 to 5):
// verify the tokens (each once, then from cache) → the pure checks (check-tokens.ts: the grant
// floor, a full revocation store, the request-dependent token checks, every time) → the
// decision cache → one coalesced PDP evaluation per key → record (metrics and the audit line).
// A PDP failure is a value (one switch in onComplete), not an exception.
// On a cache hit with cached tokens nothing here awaits.
import type { Authorizer, RequestFacts, Verdict } from './authorizer.ts';
import { denial, type DenyReason } from './denial.ts';
import { DecisionCache, DecisionScopes, decisionKey, type CachedDecision, type RouteCacheStats, type TtlBound } from './decision-cache.ts';
import { Revocations } from './revocations.ts';
import { checkFloor, checkTokens, recheckGrant, type Refusal, type TokenRules } from './check-tokens.ts';
import type { Grant } from '../tokens/grant.ts';
import { postureDeadline, type PostureAssertion } from '../tokens/posture.ts';
import { readIntent } from '../tokens/intent.ts';
import { isRefused, type TokenResult, type TokenVerifier } from '../tokens/token-verifier.ts';
import type { Pdp, PdpAllow, PdpDeny, PdpInput, PdpResult } from '../pdp/pdp.ts';
import { evaluateWithin } from '../pdp/evaluate-within.ts';
import type { CounterCell, Metrics } from '../telemetry/metrics.ts';
import { auditTime, type AuditLog } from '../telemetry/audit.ts';
import type { Logger } from '../telemetry/logger.ts';
import { RateLimitedLog } from './rate-limited-log.ts';

export type DecisionSource = 'cache' | 'pdp' | 'coalesced' | 'local';

export interface DecisionPathOptions {
  readonly generation: number;
  readonly pdp: Pdp;
  readonly grants: TokenVerifier<Grant>;
  readonly postures: TokenVerifier<PostureAssertion>;
  readonly grantHeader: string;
  readonly postureHeader: string;
  readonly intentHeader: string;
  readonly postureMaxAgeMs: number;
  /** grants.maxLifetime: a grant whose exp - iat is longer is refused (grant_ttl_too_long). */
  readonly grantMaxLifetimeMs: number;
  readonly allowTtlMs: number;
  readonly denyTtlMs: number;
  readonly pdpTimeoutMs: number;
  /** Shared across config generations: revoking must outlive a reload. */
  readonly cache: DecisionCache;
  readonly revocations: Revocations;
  readonly metrics: Metrics;
  readonly audit: AuditLog;
  /** Where PDP failures go (rate-limited: one line per kind per `failureLogIntervalMs`). */
  readonly logger?: Logger;
  readonly failureLogIntervalMs?: number;
}

/** An allow on no grant and no posture assertion: shared, no allocation per request. */
const ALLOW_NO_GROUNDS: Verdict = Object.freeze({ allow: true, grantId: undefined, grantExpMs: undefined, postureDeadlineMs: undefined });
const DENIED = new Map<DenyReason, Verdict>();

/**
 * Reasons that say the grant itself failed step 3 (or its lifetime a tier's bound): on a shadow
 * route such a grant is not named to the service in x-jit-grant-id (SPEC "To the service": only a
 * grant that was used).
 */
const GRANT_FAILED: ReadonlySet<DenyReason> = new Set(['grant_invalid', 'grant_expired', 'grant_revoked', 'grant_subject_mismatch', 'grant_scope', 'grant_ttl_too_long']);

function deniedVerdict(reason: DenyReason): Verdict {
  let verdict = DENIED.get(reason);
  if (!verdict) DENIED.set(reason, (verdict = Object.freeze({ allow: false, denial: denial(reason) })));
  return verdict;
}

export class DecisionPath implements Authorizer {
  private readonly o: DecisionPathOptions;
  private readonly inflight = new Map<string, Promise<PdpResult>>();
  private readonly allowCells = new WeakMap<RequestFacts['route'], Partial<Record<DecisionSource, CounterCell>>>();
  private readonly routeStats = new WeakMap<RequestFacts['route'], RouteCacheStats>();
  private readonly failureLog: RateLimitedLog | undefined;
  private readonly rules: TokenRules;
  /** This generation's decision scopes (route, action, peer) by short ref, for the cache keys. */
  private readonly scopes = new DecisionScopes();

  constructor(options: DecisionPathOptions) {
    this.o = options;
    this.rules = { grantMaxLifetimeMs: options.grantMaxLifetimeMs, postureMaxAgeMs: options.postureMaxAgeMs, revocations: options.revocations };
    this.failureLog = options.logger ? new RateLimitedLog(options.logger, options.failureLogIntervalMs ?? 10_000) : undefined;
  }

  /**
   * Revokes every grant with this jti and purges their decisions. Kept until no grant it names
   * can be valid (SPEC "Fleet-wide revocation"): the exp of one we have seen counts too.
   */
  revokeGrant(jti: string, at = Date.now(), entryExpMs = 0): number {
    let seenExpMs = entryExpMs;
    this.o.grants.find((grant) => {
      if (grant.jti === jti && grant.expMs > seenExpMs) seenExpMs = grant.expMs;
      return false;
    });
    this.o.revocations.revokeJti(jti, seenExpMs, at);
    this.warnIfFull();
    const purged = this.o.cache.purge({ jti });
    this.o.metrics.cacheEntries.set(this.o.cache.size);
    return purged;
  }

  /** Revokes every grant issued to `sub` so far and purges that peer's decisions. */
  revokeSubject(sub: string, at = Date.now()): number {
    this.o.revocations.revokeSub(sub, at);
    this.warnIfFull();
    const purged = this.o.cache.purge({ peer: sub });
    this.o.metrics.cacheEntries.set(this.o.cache.size);
    return purged;
  }

  /** Revokes the peer's posture assertions issued so far and purges that peer's decisions. */
  revokePosture(sub: string, at = Date.now()): number {
    this.o.revocations.revokePostureSub(sub, at);
    this.warnIfFull();
    const purged = this.o.cache.purge({ peer: sub });
    this.o.metrics.cacheEntries.set(this.o.cache.size);
    return purged;
  }

  private warnIfFull(): void {
    const r = this.o.revocations;
    if (r.full) this.o.logger?.warn({ entries: r.size, max_entries: r.maxEntries }, 'revocation store full (revocation.maxEntries): privileged requests refuse with 503 revocation_unavailable until expired entries are swept');
  }

  authorize(facts: RequestFacts): Verdict | Promise<Verdict> {
    const started = performance.now();
    const now = Date.now();
    const grantToken = facts.headers[this.o.grantHeader];
    const postureToken = facts.headers[this.o.postureHeader];
    const floor = checkFloor(facts, grantToken, postureToken, this.o.revocations, now);
    if (floor) {
      if (floor.reason === 'revocation_unavailable') {
        if (this.o.revocations.full) this.failureLog?.warn('revocation_full', { entries: this.o.revocations.size, request_id: facts.requestId }, 'revocation store full: privileged request refused with 503 revocation_unavailable');
        else this.failureLog?.warn('revocation_stale', { request_id: facts.requestId }, 'revocation bus stale (revocation.maxStaleness): privileged request refused with 503 revocation_unavailable');
      }
      return this.refuse(facts, started, floor, now);
    }
    // checkFloor refused a header sent twice: each one here is a string or absent.
    const grantResult = typeof grantToken === 'string' ? this.o.grants.verify(grantToken, now) : undefined;
    const postureResult = typeof postureToken === 'string' ? this.o.postures.verify(postureToken, now) : undefined;
    if (grantResult instanceof Promise || postureResult instanceof Promise) {
      return Promise.all([grantResult, postureResult]).then(([g, p]) => this.withTokens(facts, started, Date.now(), g, p));
    }
    // Keep what was measured (STYLE): a cache hit with cached tokens returns without an await.
    return this.withTokens(facts, started, now, grantResult, postureResult);
  }

  private withTokens(facts: RequestFacts, started: number, now: number, grantResult: TokenResult<Grant> | undefined, postureResult: TokenResult<PostureAssertion> | undefined): Verdict | Promise<Verdict> {
    const intent = readIntent(facts.headers[this.o.intentHeader]);
    const refused = checkTokens(facts, grantResult, postureResult, intent, now, this.rules);
    if (refused) return this.refuse(facts, started, refused, now);
    // The checks passed: every token sent verified, and the intent is well-formed (not null).
    const grantToken = grantResult && !isRefused(grantResult) ? grantResult : undefined;
    const postureToken = postureResult && !isRefused(postureResult) ? postureResult : undefined;
    const grant = grantToken?.value;
    const posture = postureToken?.value;

    // Each verified token has its own short ref: two grants that share a jti (a re-issue, or two
    // issuers' counters) differ in what the PDP judges (lifetime, claims), so never share a decision.
    const key = decisionKey(this.scopes.ref(facts.route.name, facts.route.action, facts.peer.svid.id.uri), facts.resource, grantToken?.ref ?? '', postureToken?.ref ?? '', intent ?? '');
    const cached = this.o.cache.get(key, now, this.statsOf(facts.route));
    if (cached) return this.finish(facts, started, cached.allow ? undefined : (cached.reason ?? 'policy_denied'), grant, posture, 'cache', cached.detail, now);

    let pending = this.inflight.get(key);
    let source: DecisionSource = 'coalesced';
    if (!pending) {
      source = 'pdp';
      pending = this.evaluate(key, facts, grant, posture, intent ?? undefined, now);
      this.inflight.set(key, pending);
      pending.finally(() => this.inflight.delete(key)).catch(() => undefined);
    }
    return pending.then((result) => this.onComplete(facts, started, result, grant, posture, source));
  }

  /** The PDP's answer, for this request (the first or a coalesced one). The one switch on it. */
  private onComplete(facts: RequestFacts, started: number, result: PdpResult, grant: Grant | undefined, posture: PostureAssertion | undefined, source: DecisionSource): Verdict {
    switch (result.kind) {
      case 'error':
        // SPEC step 4: a PDP error is 503, never an allow, never cached.
        return this.finish(facts, started, 'pdp_unavailable', grant, posture, source, `${result.outcome}: ${result.detail}`);
      case 'deny': {
        const late = recheckGrant(grant, Date.now(), this.o.revocations);
        return this.finish(facts, started, late ?? result.reason, grant, posture, source, late ? undefined : result.detail);
      }
      case 'allow': {
        const late = recheckGrant(grant, Date.now(), this.o.revocations);
        return this.finish(facts, started, late, grant, posture, source, late ? undefined : result.detail);
      }
    }
  }

  /** One PDP evaluation per key: counted, timed, logged if it failed, cached if it answered. */
  private async evaluate(key: string, facts: RequestFacts, grant: Grant | undefined, posture: PostureAssertion | undefined, intent: string | undefined, now: number): Promise<PdpResult> {
    const input: PdpInput = {
      subject: facts.peer.svid.id.uri,
      posture,
      action: facts.route.action,
      method: facts.method,
      resource: facts.resource,
      route: facts.route.name,
      sensitivity: facts.route.sensitivity,
      grant,
      intent,
      requestId: facts.requestId,
      nowMs: now,
      // Built only here, on a miss: a cache hit never needs it.
      http: { path: facts.path, host: facts.headers.host ?? '', headers: facts.headers, peerAddress: facts.peerAddress, peerPort: facts.peerPort },
    };
    const started = performance.now();
    // pdp.timeout and a bug of our own both come back as error values (src/pdp/evaluate-within.ts).
    const result = await evaluateWithin(this.o.pdp, input, this.o.pdpTimeoutMs);
    this.o.metrics.pdpRequests.inc({ outcome: result.kind === 'error' ? result.outcome : result.kind });
    this.o.metrics.pdpDuration.observe((performance.now() - started) / 1000);
    if (result.kind === 'error') {
      // "check the sidecar logs" must find something: one line per kind of failure per interval.
      this.failureLog?.warn(result.outcome, { pdp: this.o.pdp.kind, outcome: result.outcome, route: facts.route.name, request_id: facts.requestId, detail: `${result.outcome}: ${result.detail}`.slice(0, 300) }, 'PDP call failed: privileged requests get 503 pdp_unavailable');
      return result;
    }
    const [ttl, bound] = this.ttlFor(result, facts, grant, posture);
    const decision: CachedDecision = { allow: result.kind === 'allow', reason: result.kind === 'deny' ? result.reason : undefined, detail: result.detail, peer: input.subject, jti: grant?.jti ?? '', route: facts.route.name };
    // A revocation that landed while the PDP thought has already purged this grant's entries.
    const r = this.o.revocations;
    const stored = (!grant || !r.isRevoked(grant.jti, grant.sub, grant.iatMs, grant.expMs)) && (!posture || !r.isPostureRevoked(posture.sub, posture.iatMs)) && this.o.cache.set(key, decision, ttl);
    // The TTL view (SPEC "Admin listener"): which bound set the lifetime of each allow stored.
    if (stored && bound !== undefined) {
      this.statsOf(facts.route).bounds[bound]++;
      this.o.metrics.cacheTtlBound.cell(facts.route.name, bound).n++;
    }
    this.o.metrics.cacheEntries.set(this.o.cache.size);
    return result;
  }

  /**
   * An allow lives at most min(PDP TTL, allowTtl, route cacheTtl, grant exp, posture expiry); the
   * bound is the one that set it (on a tie, the first in that order: the one named in SPEC first).
   */
  private ttlFor(result: PdpAllow | PdpDeny, facts: RequestFacts, grant: Grant | undefined, posture: PostureAssertion | undefined): [number, TtlBound | undefined] {
    if (result.ttlMs === 0) return [0, undefined];
    if (result.kind === 'deny') return [Math.min(this.o.denyTtlMs, result.ttlMs ?? Infinity), undefined];
    const now = Date.now();
    let ttl = result.ttlMs ?? Infinity;
    let bound: TtlBound = 'pdp';
    const lower = (candidate: number, name: TtlBound): void => {
      if (candidate < ttl) [ttl, bound] = [candidate, name];
    };
    lower(this.o.allowTtlMs, 'allow_ttl');
    if (facts.route.cacheTtlMs !== undefined) lower(facts.route.cacheTtlMs, 'route_ttl');
    if (grant) lower(grant.expMs - now, 'grant_exp');
    if (posture) lower(postureDeadline(posture, this.o.postureMaxAgeMs) - now, 'posture');
    return [ttl, bound];
  }

  /** This route's cache counters, found once per route object (the cache keeps them across reloads). */
  private statsOf(route: RequestFacts['route']): RouteCacheStats {
    let stats = this.routeStats.get(route);
    if (stats === undefined) this.routeStats.set(route, (stats = this.o.cache.routeStats(route.name)));
    return stats;
  }

  /** Allows are most decisions: their counter cells are kept per route, found without building a label key. */
  private allowCell(route: RequestFacts['route'], source: DecisionSource): CounterCell {
    let cells = this.allowCells.get(route);
    if (cells === undefined) this.allowCells.set(route, (cells = {}));
    return (cells[source] ??= this.o.metrics.decisions.cell(route.name, 'allow', 'allowed', source));
  }

  private refuse(facts: RequestFacts, started: number, refusal: Refusal, now: number): Verdict {
    return this.finish(facts, started, refusal.reason, refusal.grant, refusal.posture, 'local', refusal.detail, now);
  }

  /**
   * SPEC step 8: a shadow route forwards what it would deny, counted by reason. The verdict rests
   * on no grounds (the exchange is not cut at a deadline that already failed it), and names the
   * grant only when the grant itself was not the problem.
   */
  private shadowed(facts: RequestFacts, reason: DenyReason, grant: Grant | undefined): Verdict {
    this.o.metrics.shadowDenials.cell(facts.route.name, reason).n++;
    return { allow: true, grantId: grant && !GRANT_FAILED.has(reason) ? grant.jti : undefined, grantExpMs: undefined, postureDeadlineMs: undefined, shadowDenial: denial(reason) };
  }

  /**
   * Records the decision (metrics and the audit line) and returns its verdict. `now`: the clock
   * reading of a decision that did not wait (a cache hit, a local refusal), for the audit time,
   * sparing a clock read; undefined after an await (the PDP answered): the clock is read.
   */
  private finish(facts: RequestFacts, started: number, reason: DenyReason | undefined, grant: Grant | undefined, posture: PostureAssertion | undefined, source: DecisionSource, detail: string | undefined, now?: number): Verdict {
    const seconds = (performance.now() - started) / 1000;
    const m = this.o.metrics;
    if (reason === 'grant_expired') m.grantExpired.inc();
    m.decisionDuration.observe(m.decisionDuration.cell(source), seconds);
    (reason ? m.decisions.cell(facts.route.name, 'deny', reason, source) : this.allowCell(facts.route, source)).n++;
    this.o.audit.write({
      time: auditTime(now),
      request_id: facts.requestId,
      peer: facts.peer.svid.id.uri,
      action: facts.route.action,
      resource: facts.resource,
      route: facts.route.name,
      decision: reason ? 'deny' : 'allow',
      reason: reason ?? 'allowed',
      source,
      grant_jti: grant?.jti,
      approver: grant?.approver,
      justification: grant?.justification,
      intent: auditIntent(facts.headers[this.o.intentHeader]),
      posture_tier: posture?.tier,
      latency_ms: seconds * 1000,
      pdp_detail: detail,
      // Plain properties, undefined off JSON-RPC routes (JSON.stringify leaves them out): one object
      // shape for every line, no spread on the cache-hit path.
      rpc_method: facts.rpc?.method,
      rpc_name: facts.rpc?.name,
      rpc_id: facts.rpc === undefined ? undefined : (facts.rpc.id ?? null),
      mode: facts.route.mode,
      protocol: facts.protocol,
    });
    if (reason) return facts.route.mode === 'shadow' ? this.shadowed(facts, reason, grant) : deniedVerdict(reason);
    if (!grant && !posture) return ALLOW_NO_GROUNDS;
    // The proxy ends the exchange when these pass (SPEC "Streams"): the grant's exp, and the
    // posture assertion's exp or maxAge, whichever comes first.
    return { allow: true, grantId: grant?.jti, grantExpMs: grant?.expMs, postureDeadlineMs: posture ? postureDeadline(posture, this.o.postureMaxAgeMs) : undefined };
  }
}

/** The intent as declared (UTF-8 decoded); a malformed one as received, cut short. */
function auditIntent(value: string | string[] | undefined): string | undefined {
  const intent = readIntent(value);
  if (typeof intent === 'string') return intent;
  return typeof value === 'string' ? value.slice(0, 256) : undefined;
}
