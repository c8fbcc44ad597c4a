// Verifies a compact JWS once, then serves its claims from a bounded cache until it expires.
// What depends on the request (sub = peer, cnf, revocation, scope) is checked by the caller on
// every request; what depends only on the token and config (signature, iss, aud, typ of claims)
// is what the cache remembers.
import { errors, jwtVerify, decodeJwt, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { LRUCache } from 'lru-cache';
import { ALLOWED_ALGORITHMS } from './key-set.ts';

export type TokenProblem = 'invalid' | 'expired';

export interface VerifiedToken<T> {
  readonly value: T;
  /** `exp` in milliseconds. */
  readonly expMs: number;
  /**
   * Names this exact token in decision-cache keys: unique per verified token in this process,
   * short (unlike the token or its signature), and never shared by two different tokens.
   */
  readonly ref: string;
}

let nextRef = 0;

export interface RefusedToken<T = never> {
  readonly problem: TokenProblem;
  readonly detail: string;
  /** For a token refused only because it expired after we verified it: its value, for the audit log. */
  readonly value?: T;
}

export type TokenResult<T> = VerifiedToken<T> | RefusedToken<T>;

export interface TokenVerifierOptions<T> {
  /**
   * Turns verified claims into the value callers use; throws to refuse the token. `nowMs` is the
   * time of verification: an `iat` ahead of it (within clockSkew) counts from now instead.
   */
  readonly shape: (claims: JWTPayload, token: string, nowMs: number) => T;
  readonly issuers: ReadonlyMap<string, JWTVerifyGetKey>;
  /** Accepted `aud` values; undefined skips the check (posture assertions). */
  readonly audience: readonly string[] | undefined;
  readonly clockSkewMs: number;
  readonly maxTokenBytes: number;
  readonly requiredClaims: readonly string[];
  readonly cacheEntries: number;
}

const INVALID_TTL_MS = 60_000;

/** A cached result with the exact token it is for: a lookup matches only that token. */
interface Entry<R> {
  readonly token: string;
  readonly result: R;
}

/**
 * The cache key of a token: its last 12 characters (the end of its signature, 72 random bits)
 * for a long token. Every request brings the token as a fresh string, and the key is hashed on
 * every lookup: all ~600 characters cost about 0.8 µs, the 43 of a whole ES256 signature still
 * about a third of a 0.9 µs cache-hit decision (profiled, two tokens per request), 12 almost
 * nothing (V8 copies a slice that short into a small flat string instead of pointing into the
 * token). Among genuine tokens 72 bits are as unique (10,000 cached: a collision about once in
 * 10^14, and it would only make the two evict each other). A forged token can copy the tail, so
 * every hit also compares the whole token, and a forgery never enters the verified cache to
 * displace the genuine entry.
 */
function keyOf(token: string): string {
  return token.length > 64 ? token.slice(-12) : token;
}

const EXPIRED: RefusedToken = Object.freeze({ problem: 'expired', detail: 'token has expired' });

function expired<T>(value: T): RefusedToken<T> {
  return { problem: 'expired', detail: 'token has expired', value };
}

export class TokenVerifier<T> {
  private readonly options: TokenVerifierOptions<T>;
  private readonly verified: LRUCache<string, Entry<VerifiedToken<T>>>;
  // Garbage and forgeries are remembered briefly so a flood of one bad token costs one check.
  private readonly refused: LRUCache<string, Entry<RefusedToken<T>>>;
  private readonly inflight = new Map<string, Promise<TokenResult<T>>>();

  constructor(options: TokenVerifierOptions<T>) {
    this.options = options;
    this.verified = new LRUCache({ max: Math.max(1, options.cacheEntries) });
    this.refused = new LRUCache({ max: 10_000, ttl: INVALID_TTL_MS });
  }

  /** A cached result without awaiting, or undefined when the token must be verified. */
  cached(token: string, now: number): TokenResult<T> | undefined {
    const key = keyOf(token);
    const entry = this.verified.get(key);
    if (entry !== undefined && entry.token === token) {
      const hit = entry.result;
      return now >= hit.expMs ? expired(hit.value) : hit;
    }
    const refused = this.refused.get(key);
    return refused !== undefined && refused.token === token ? refused.result : undefined;
  }

  /** The first cached verified value that satisfies `test` (admin lookups, not the hot path). */
  find(test: (value: T) => boolean): T | undefined {
    for (const entry of this.verified.values()) if (test(entry.result.value)) return entry.result.value;
    return undefined;
  }

  verify(token: string, now: number): TokenResult<T> | Promise<TokenResult<T>> {
    const cached = this.cached(token, now);
    if (cached) return cached;
    if (token.length > this.options.maxTokenBytes) return { problem: 'invalid', detail: `token longer than ${this.options.maxTokenBytes} bytes` };
    let pending = this.inflight.get(token);
    if (!pending) {
      pending = this.verifyUncached(token).finally(() => this.inflight.delete(token));
      this.inflight.set(token, pending);
    }
    return pending;
  }

  private async verifyUncached(token: string): Promise<TokenResult<T>> {
    let issuer: unknown;
    let nbf: unknown;
    try {
      ({ iss: issuer, nbf } = decodeJwt(token));
    } catch {
      return this.refuse(token, 'invalid', 'not a well-formed JWT');
    }
    const keys = typeof issuer === 'string' ? this.options.issuers.get(issuer) : undefined;
    if (!keys) return this.refuse(token, 'invalid', 'issuer is not configured');
    const toleranceSeconds = Math.ceil(this.options.clockSkewMs / 1000);
    try {
      const { payload } = await jwtVerify(token, keys, {
        algorithms: ALLOWED_ALGORITHMS,
        issuer: issuer as string,
        audience: this.options.audience as string[] | undefined,
        clockTolerance: toleranceSeconds,
        requiredClaims: [...this.options.requiredClaims],
      });
      if (typeof payload.exp !== 'number') return this.refuse(token, 'invalid', 'exp is required');
      const now = Date.now();
      // SPEC "Tokens": an iat later than now + clockSkew is refused (jose checks iat only with
      // maxTokenAge). Lifetimes are measured from iat, so a future iat would stretch them.
      if (typeof payload.iat === 'number' && payload.iat * 1000 > now + this.options.clockSkewMs) {
        // Remembered only until it could pass, as nbf is: the cache never changes an answer.
        return this.refuse(token, 'invalid', 'iat is in the future (beyond clockSkew)', Math.min(INVALID_TTL_MS, payload.iat * 1000 - this.options.clockSkewMs - now));
      }
      let value: T;
      try {
        value = this.options.shape(payload, token, now);
      } catch (error) {
        return this.refuse(token, 'invalid', (error as Error).message);
      }
      const result: VerifiedToken<T> = { value, expMs: payload.exp * 1000, ref: (nextRef++).toString(36) };
      // `exp` is never stretched by clock skew: the tolerance applied to nbf/iat only.
      if (now >= result.expMs) return expired(value);
      // No LRU ttl: cached() compares exp itself on every hit (an LRU ttl would read the clock
      // again per lookup); an expired entry is refused as expired until the LRU evicts it.
      this.verified.set(keyOf(token), { token, result });
      return result;
    } catch (error) {
      if (error instanceof errors.JWTExpired) return EXPIRED;
      const code = (error as { code?: string }).code ?? 'ERR_JOSE';
      return this.refuse(token, 'invalid', `${code}: ${(error as Error).message}`, refusalTtl(error, nbf, toleranceSeconds));
    }
  }

  private refuse(token: string, problem: TokenProblem, detail: string, ttlMs = INVALID_TTL_MS): RefusedToken<T> {
    const result: RefusedToken<T> = { problem, detail };
    if (ttlMs >= 1) this.refused.set(keyOf(token), { token, result }, { ttl: Math.floor(ttlMs) });
    return result;
  }
}

/**
 * How long a refusal may be remembered. A token refused for what time undoes (`nbf` not yet
 * reached) is remembered only until it could pass; one refused because the keys could not be
 * fetched, or no fetched key matched its `kid` yet (a rotation), is not remembered at all: the
 * token itself may be good, and the remote key set has its own cooldown.
 */
function refusalTtl(error: unknown, nbf: unknown, toleranceSeconds: number): number {
  if (error instanceof errors.JWTClaimValidationFailed && error.claim === 'nbf') {
    return typeof nbf === 'number' ? Math.min(INVALID_TTL_MS, (nbf - toleranceSeconds) * 1000 - Date.now()) : 0;
  }
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSNoMatchingKey || !(error instanceof errors.JOSEError)) return 0;
  return INVALID_TTL_MS;
}

export function isRefused<T>(result: TokenResult<T>): result is RefusedToken<T> {
  return (result as RefusedToken<T>).problem !== undefined;
}
