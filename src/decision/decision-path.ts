// decide(), per privileged request (SPEC "The decision, per request", steps 2 to 5): the grant
// floor and a full revocation store first (no PDP is asked), then tokens (each verified once,
// then served from cache; request-dependent checks every time, expiry first), then the decision
// cache, then one coalesced PDP evaluation per key.
// On a cache hit with cached tokens nothing here awaits.
import type { Authorizer, RequestFacts, Verdict } from './authorizer.ts';
import { denial, type DenyReason } from './denial.ts';
import { DecisionCache, decisionKey, type CachedDecision } from './decision-cache.ts';
import { Revocations } from './revocations.ts';
import { checkGrant, type Grant } from '../tokens/grant.ts';
import { checkPosture, postureDeadline, type PostureAssertion } from '../tokens/posture.ts';
import { readIntent } from '../tokens/intent.ts';
import { isRefused, type TokenResult, type TokenVerifier } from '../tokens/token-verifier.ts';
import { PdpUnavailable, type Pdp, type PdpInput, type PdpResult } from '../pdp/pdp.ts';
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

interface PdpOutcome {
  readonly result: PdpResult | undefined; // undefined: the PDP failed
  readonly error: string | undefined;
}

const ALLOW_NO_GRANT: Verdict = Object.freeze({ allow: true, grantId: undefined, grantExpMs: undefined });
const DENIED = new Map<DenyReason, Verdict>();
/** A route whose sensitivity demands a grant whatever the PDP (SPEC step 2: the grant floor). */
function needsGrant(sensitivity: RequestFacts['route']['sensitivity']): boolean {
  return sensitivity === 'high' || sensitivity === 'critical';
}

function deniedVerdict(reason: DenyReason): Verdict {
  let verdict = DENIED.get(reason);
  if (!verdict) DENIED.set(reason, (verdict = Object.freeze({ allow: false, denial: denial(reason) })));
  return verdict;
}

class PdpTimeout extends Error {}

export class DecisionPath implements Authorizer {
  private readonly o: DecisionPathOptions;
  private readonly inflight = new Map<string, Promise<PdpOutcome>>();
  private readonly allowCells = new WeakMap<RequestFacts['route'], Partial<Record<DecisionSource, CounterCell>>>();
  private readonly failureLog: RateLimitedLog | undefined;

  constructor(options: DecisionPathOptions) {
    this.o = options;
    this.failureLog = options.logger ? new RateLimitedLog(options.logger, options.failureLogIntervalMs ?? 10_000) : undefined;
  }

  /**
   * Revokes every grant with this jti and purges their decisions. Kept until no grant it names
   * can be valid (SPEC "Fleet-wide revocation"): the exp of one we have seen counts too.
   */
  revokeGrant(jti: string): number {
    let seenExpMs = 0;
    this.o.grants.find((grant) => {
      if (grant.jti === jti && grant.expMs > seenExpMs) seenExpMs = grant.expMs;
      return false;
    });
    this.o.revocations.revokeJti(jti, seenExpMs);
    this.warnIfFull();
    const purged = this.o.cache.purge({ jti });
    this.o.metrics.cacheEntries.set(this.o.cache.size);
    return purged;
  }

  /** Revokes every grant issued to `sub` so far and purges that peer's decisions. */
  revokeSubject(sub: string): number {
    this.o.revocations.revokeSub(sub);
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
    // The grant floor comes from the proxy itself, not the policy: no PDP (embedded or remote)
    // is asked, so none can forget it.
    if (grantToken === undefined && needsGrant(facts.route.sensitivity)) {
      return this.finish(facts, started, 'grant_required', undefined, undefined, 'local', `sensitivity ${facts.route.sensitivity} needs a grant`);
    }
    // A full revocation store cannot take one more revocation without forgetting one: fail closed.
    if (this.o.revocations.full) {
      this.failureLog?.warn('revocation_full', { entries: this.o.revocations.size, request_id: facts.requestId }, 'revocation store full: privileged request refused with 503 revocation_unavailable');
      return this.finish(facts, started, 'revocation_unavailable', undefined, undefined, 'local', 'revocation.maxEntries reached');
    }
    if (Array.isArray(grantToken)) return this.finish(facts, started, 'grant_invalid', undefined, undefined, 'local', undefined);
    if (Array.isArray(postureToken)) return this.finish(facts, started, 'posture_invalid', undefined, undefined, 'local', undefined);
    const grantResult = grantToken === undefined ? undefined : this.o.grants.verify(grantToken, now);
    const postureResult = postureToken === undefined ? undefined : this.o.postures.verify(postureToken, now);
    if (grantResult instanceof Promise || postureResult instanceof Promise) {
      return Promise.all([grantResult, postureResult]).then(([g, p]) => this.withTokens(facts, started, Date.now(), g, p));
    }
    return this.withTokens(facts, started, now, grantResult, postureResult);
  }

  private withTokens(facts: RequestFacts, started: number, now: number, grantResult: TokenResult<Grant> | undefined, postureResult: TokenResult<PostureAssertion> | undefined): Verdict | Promise<Verdict> {
    let grant: Grant | undefined;
    if (grantResult) {
      if (isRefused(grantResult)) {
        if (grantResult.problem === 'expired') this.o.metrics.grantExpired.inc();
        // An expired grant we had verified still names its jti in the audit log.
        return this.finish(facts, started, grantResult.problem === 'expired' ? 'grant_expired' : 'grant_invalid', grantResult.value, undefined, 'local', grantResult.detail);
      }
      grant = grantResult.value;
      const problem = checkGrant(grant, facts.peer, facts.route.action, facts.resource, now, this.o.grantMaxLifetimeMs);
      if (problem) {
        if (problem === 'grant_expired') this.o.metrics.grantExpired.inc();
        return this.finish(facts, started, problem, grant, undefined, 'local', undefined);
      }
      if (this.o.revocations.isRevoked(grant.jti, grant.sub, grant.iatMs, grant.expMs)) return this.finish(facts, started, 'grant_revoked', grant, undefined, 'local', undefined);
    }
    let posture: PostureAssertion | undefined;
    if (postureResult) {
      if (isRefused(postureResult)) return this.finish(facts, started, postureResult.problem === 'expired' ? 'posture_stale' : 'posture_invalid', grant, postureResult.value, 'local', postureResult.detail);
      posture = postureResult.value;
      const problem = checkPosture(posture, facts.peer, this.o.postureMaxAgeMs, now);
      if (problem) return this.finish(facts, started, problem, grant, posture, 'local', undefined);
    }
    const intent = readIntent(facts.headers[this.o.intentHeader]);
    if (intent === null) return this.finish(facts, started, 'intent_mismatch', grant, posture, 'local', 'malformed intent header');
    if (grant?.intent !== undefined && intent !== grant.intent) {
      return this.finish(facts, started, intent === undefined ? 'intent_required' : 'intent_mismatch', grant, posture, 'local', undefined);
    }

    // Each verified token has its own short ref: two grants that share a jti (a re-issue, or two
    // issuers' counters) differ in what the PDP judges (lifetime, claims), so never share a decision.
    const grantRef = grantResult && !isRefused(grantResult) ? grantResult.ref : '';
    const postureRef = postureResult && !isRefused(postureResult) ? postureResult.ref : '';
    const key = decisionKey(this.o.generation, facts.route.name, facts.peer.svid.id.uri, facts.route.action, facts.resource, grantRef, postureRef, intent ?? '');
    const cached = this.o.cache.get(key, now);
    if (cached) return this.finish(facts, started, cached.allow ? undefined : (cached.reason ?? 'policy_denied'), grant, posture, 'cache', cached.detail);

    let pending = this.inflight.get(key);
    let source: DecisionSource = 'coalesced';
    if (!pending) {
      source = 'pdp';
      pending = this.evaluate(key, facts, grant, posture, intent, now);
      this.inflight.set(key, pending);
      pending.finally(() => this.inflight.delete(key)).catch(() => undefined);
    }
    return pending.then((outcome) => {
      if (!outcome.result) return this.finish(facts, started, 'pdp_unavailable', grant, posture, source, outcome.error);
      const { result } = outcome;
      // The grant may have expired, or been revoked, while the PDP thought: checked after, too.
      if (grant && Date.now() >= grant.expMs) {
        this.o.metrics.grantExpired.inc();
        return this.finish(facts, started, 'grant_expired', grant, posture, source, undefined);
      }
      if (grant && this.o.revocations.isRevoked(grant.jti, grant.sub, grant.iatMs, grant.expMs)) return this.finish(facts, started, 'grant_revoked', grant, posture, source, undefined);
      return this.finish(facts, started, result.allow ? undefined : (result.reason ?? 'policy_denied'), grant, posture, source, result.detail);
    });
  }

  private async evaluate(key: string, facts: RequestFacts, grant: Grant | undefined, posture: PostureAssertion | undefined, intent: string | undefined, now: number): Promise<PdpOutcome> {
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
    let result: PdpResult;
    try {
      const answer = this.o.pdp.evaluate(input);
      result = answer instanceof Promise ? await withTimeout(answer, this.o.pdpTimeoutMs) : answer;
    } catch (error) {
      const outcome = error instanceof PdpTimeout ? 'timeout' : error instanceof PdpUnavailable ? error.outcome : 'error';
      this.o.metrics.pdpRequests.inc({ outcome });
      this.o.metrics.pdpDuration.observe((performance.now() - started) / 1000);
      const detail = `${outcome}: ${(error as Error).message}`;
      // "check the sidecar logs" must find something: one line per kind of failure per interval.
      this.failureLog?.warn(outcome, { pdp: this.o.pdp.kind, outcome, route: facts.route.name, request_id: facts.requestId, detail: detail.slice(0, 300) }, 'PDP call failed: privileged requests get 503 pdp_unavailable');
      return { result: undefined, error: detail };
    }
    this.o.metrics.pdpRequests.inc({ outcome: result.allow ? 'allow' : 'deny' });
    this.o.metrics.pdpDuration.observe((performance.now() - started) / 1000);
    const ttl = this.ttlFor(result, facts, grant, posture);
    const decision: CachedDecision = { allow: result.allow, reason: result.reason, detail: result.detail, peer: input.subject, jti: grant?.jti ?? '' };
    // A revocation that landed while the PDP thought has already purged this grant's entries.
    if (!grant || !this.o.revocations.isRevoked(grant.jti, grant.sub, grant.iatMs, grant.expMs)) this.o.cache.set(key, decision, ttl);
    this.o.metrics.cacheEntries.set(this.o.cache.size);
    return { result, error: undefined };
  }

  /** An allow lives at most min(PDP TTL, allowTtl, route cacheTtl, grant exp, posture expiry). */
  private ttlFor(result: PdpResult, facts: RequestFacts, grant: Grant | undefined, posture: PostureAssertion | undefined): number {
    if (result.ttlMs === 0) return 0;
    if (!result.allow) return Math.min(this.o.denyTtlMs, result.ttlMs ?? Infinity);
    const now = Date.now();
    let ttl = Math.min(this.o.allowTtlMs, result.ttlMs ?? Infinity, facts.route.cacheTtlMs ?? Infinity);
    if (grant) ttl = Math.min(ttl, grant.expMs - now);
    if (posture) ttl = Math.min(ttl, postureDeadline(posture, this.o.postureMaxAgeMs) - now);
    return ttl;
  }

  /** Allows are most decisions: their counter cells are kept per route, found without building a label key. */
  private allowCell(route: RequestFacts['route'], source: DecisionSource): CounterCell {
    let cells = this.allowCells.get(route);
    if (cells === undefined) this.allowCells.set(route, (cells = {}));
    return (cells[source] ??= this.o.metrics.decisions.cell(route.name, 'allow', 'allowed', source));
  }

  private finish(facts: RequestFacts, started: number, reason: DenyReason | undefined, grant: Grant | undefined, posture: PostureAssertion | undefined, source: DecisionSource, detail: string | undefined): Verdict {
    const seconds = (performance.now() - started) / 1000;
    const m = this.o.metrics;
    m.decisionDuration.observe(m.decisionDuration.cell(source), seconds);
    (reason ? m.decisions.cell(facts.route.name, 'deny', reason, source) : this.allowCell(facts.route, source)).n++;
    this.o.audit.write({
      time: auditTime(),
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
    });
    if (reason) return deniedVerdict(reason);
    return grant ? { allow: true, grantId: grant.jti, grantExpMs: grant.expMs } : ALLOW_NO_GRANT;
  }
}

/** The intent as declared (UTF-8 decoded); a malformed one as received, cut short. */
function auditIntent(value: string | string[] | undefined): string | undefined {
  const intent = readIntent(value);
  if (typeof intent === 'string') return intent;
  return typeof value === 'string' ? value.slice(0, 256) : undefined;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new PdpTimeout(`no answer within ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
