// Revoked grants (by jti) and revoked grantees (by sub), whatever source they came from (SPEC
// "Fleet-wide revocation", last part). A revocation is never forgotten while a grant it names
// could still be valid: it is kept until revocation time + grants.maxLifetime + clockSkew (any
// grant issued before it is dead by then, since longer grants are refused), or longer if a grant
// it names was seen with a later exp. Nothing is ever evicted to make room: at
// revocation.maxEntries the store is full, and privileged requests refuse with
// revocation_unavailable until expired entries are swept. The sweep runs on a timer with a
// bounded amount of work per tick; a request costs a Map lookup or two.

export interface RevocationLimits {
  readonly maxEntries: number;
  readonly maxLifetimeMs: number;
  readonly clockSkewMs: number;
}

export const DEFAULT_REVOCATION_LIMITS: RevocationLimits = { maxEntries: 1_000_000, maxLifetimeMs: 24 * 3_600_000, clockSkewMs: 2_000 };

export interface RevocationsOptions {
  /** How often expired entries are swept. */
  readonly sweepIntervalMs?: number;
  /** Entries looked at per sweep, at most: a sweep never stalls the event loop. */
  readonly sweepBudget?: number;
}

interface JtiEntry {
  revokedAt: number;
  /** The latest exp of a grant seen under this jti (0: none seen). */
  seenExpMs: number;
}

export class Revocations {
  private readonly jtis = new Map<string, JtiEntry>();
  /** sub → revocation time: grants issued at or before it (within clockSkew) are refused. */
  private readonly subs = new Map<string, number>();
  private limits: RevocationLimits = DEFAULT_REVOCATION_LIMITS;
  private gauge: { set(value: number): void } | undefined;
  private readonly sweepIntervalMs: number;
  private readonly sweepBudget: number;
  private timer: NodeJS.Timeout | undefined;
  // Where the last sweep stopped: Map iterators stay valid across deletes and inserts.
  private jtiCursor: MapIterator<[string, JtiEntry]> | undefined;
  private subCursor: MapIterator<[string, number]> | undefined;

  constructor(options: RevocationsOptions = {}) {
    this.sweepIntervalMs = options.sweepIntervalMs ?? 1_000;
    this.sweepBudget = options.sweepBudget ?? 20_000;
  }

  /**
   * The limits of the config generation in force (set at every load and reload), and the gauge
   * that shows the entry count. Keep times are computed from the current limits at each sweep:
   * a reload that raises grants.maxLifetime keeps existing entries longer too.
   */
  configure(limits: RevocationLimits, gauge?: { set(value: number): void }): void {
    this.limits = limits;
    if (gauge) this.gauge = gauge;
    this.report();
  }

  /** Revokes every grant with this jti; `seenExpMs` is the exp of one we have verified, if any. */
  revokeJti(jti: string, seenExpMs = 0, now = Date.now()): void {
    const entry = this.jtis.get(jti);
    if (entry) {
      entry.revokedAt = Math.max(entry.revokedAt, now);
      entry.seenExpMs = Math.max(entry.seenExpMs, seenExpMs);
    } else {
      this.jtis.set(jti, { revokedAt: now, seenExpMs });
    }
    this.changed();
  }

  /** Revokes every grant issued to `sub` up to now. */
  revokeSub(sub: string, now = Date.now()): void {
    this.subs.set(sub, Math.max(this.subs.get(sub) ?? 0, now));
    this.changed();
  }

  /**
   * A grant is refused if its jti was revoked, or its sub was revoked after it was issued. An
   * issuer's clock may run up to clockSkew ahead, so a grant whose iat is within clockSkew after
   * the revocation may have been issued before it: refused too (fail closed). A refused grant's
   * exp keeps its jti entry alive at least that long.
   */
  isRevoked(jti: string, sub: string, iatMs: number, expMs: number): boolean {
    const entry = this.jtis.get(jti);
    if (entry !== undefined) {
      if (expMs > entry.seenExpMs) entry.seenExpMs = expMs;
      return true;
    }
    const since = this.subs.get(sub);
    return since !== undefined && iatMs <= since + this.limits.clockSkewMs;
  }

  /** At maxEntries: no room for another revocation, so nothing privileged may be decided. */
  get full(): boolean {
    return this.jtis.size + this.subs.size >= this.limits.maxEntries;
  }

  get size(): number {
    return this.jtis.size + this.subs.size;
  }

  get maxEntries(): number {
    return this.limits.maxEntries;
  }

  /** When an entry may go: no grant it names can still be valid. */
  private keepUntil(revokedAt: number, seenExpMs = 0): number {
    return Math.max(revokedAt + this.limits.maxLifetimeMs + this.limits.clockSkewMs, seenExpMs);
  }

  /** Drops expired entries, looking at no more than `budget` of them; returns how many it dropped. */
  sweep(now = Date.now(), budget = this.sweepBudget): number {
    let dropped = 0;
    let looked = 0;
    this.jtiCursor ??= this.jtis.entries();
    while (looked < budget) {
      const next = this.jtiCursor.next();
      if (next.done) {
        this.jtiCursor = undefined;
        break;
      }
      looked++;
      const [jti, entry] = next.value;
      if (now >= this.keepUntil(entry.revokedAt, entry.seenExpMs)) {
        this.jtis.delete(jti);
        dropped++;
      }
    }
    this.subCursor ??= this.subs.entries();
    while (looked < budget) {
      const next = this.subCursor.next();
      if (next.done) {
        this.subCursor = undefined;
        break;
      }
      looked++;
      const [sub, revokedAt] = next.value;
      if (now >= this.keepUntil(revokedAt)) {
        this.subs.delete(sub);
        dropped++;
      }
    }
    if (dropped > 0) this.report();
    if (this.size === 0) this.stop();
    return dropped;
  }

  /** Stops the sweep timer (it also stops by itself when nothing is left to sweep). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private changed(): void {
    this.report();
    if (!this.timer) {
      this.timer = setInterval(() => this.sweep(), this.sweepIntervalMs);
      this.timer.unref();
    }
  }

  private report(): void {
    this.gauge?.set(this.size);
  }
}
