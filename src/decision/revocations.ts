// Revoked grants (by jti) and revoked grantees (by sub), whatever source they came from (SPEC
// "Fleet-wide revocation", last part). A revocation is never forgotten while a grant it names
// could still be valid: it is kept until revocation time + grants.maxLifetime + clockSkew (any
// grant issued before it is dead by then, since longer grants are refused), or longer if a grant
// it names was seen with a later exp. Nothing is ever evicted to make room: at
// revocation.maxEntries the store is full, and privileged requests refuse with
// revocation_unavailable until expired entries are swept. The sweep runs on a timer with a
// bounded amount of work per tick; a request costs a Map lookup or two.
// Posture revocations (posture_sub) are kept the same way: an assertion issued before one is
// dead by revocation time + posture.maxAge, which grants.maxLifetime bounds in practice; the
// longer of the two bounds is never shorter than needed.
// With a revocation bus, the store also holds how fresh it is (`freshUntilMs`): the bus moves
// it forward after every successful read, and the request path compares it with its clock
// (SPEC step 7) without ever awaiting the bus.

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
  /** posture_sub → revocation time: that peer's posture assertions issued at or before it are refused. */
  private readonly postureSubs = new Map<string, number>();
  /**
   * Until when what is held may be trusted (epoch ms): Infinity with no bus; with one, 0 until
   * its first full read, then the last successful read + revocation.maxStaleness.
   */
  freshUntilMs = Number.POSITIVE_INFINITY;
  private limits: RevocationLimits = DEFAULT_REVOCATION_LIMITS;
  private gauge: { set(value: number): void } | undefined;
  private readonly sweepIntervalMs: number;
  private readonly sweepBudget: number;
  private timer: NodeJS.Timeout | undefined;
  private readonly jtiSweep = new MapSweep(this.jtis);
  private readonly subSweep = new MapSweep(this.subs);
  private readonly postureSweep = new MapSweep(this.postureSubs);

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

  /** Revokes every posture assertion of `sub` issued up to now. */
  revokePostureSub(sub: string, now = Date.now()): void {
    this.postureSubs.set(sub, Math.max(this.postureSubs.get(sub) ?? 0, now));
    this.changed();
  }

  /** An assertion issued at or before the peer's posture revocation (within clockSkew: fail closed) is refused. */
  isPostureRevoked(sub: string, iatMs: number): boolean {
    const since = this.postureSubs.get(sub);
    return since !== undefined && iatMs <= since + this.limits.clockSkewMs;
  }

  /** Whether this revocation is still held (for GET /admin/revocations and tests). */
  holds(kind: 'jti' | 'sub' | 'posture_sub', value: string): boolean {
    return kind === 'jti' ? this.jtis.has(value) : kind === 'sub' ? this.subs.has(value) : this.postureSubs.has(value);
  }

  /** Counts per kind, and the first `limit` entries in force of each (oldest first). */
  list(limit: number): { jti: number; sub: number; posture_sub: number; entries: { kind: string; value: string; revoked_at: string; keep_until: string }[] } {
    const entries: { kind: string; value: string; revoked_at: string; keep_until: string }[] = [];
    const push = (kind: string, value: string, revokedAt: number, seenExpMs = 0) => {
      if (entries.length < limit) entries.push({ kind, value, revoked_at: new Date(revokedAt).toISOString(), keep_until: new Date(this.keepUntil(revokedAt, seenExpMs)).toISOString() });
    };
    for (const [jti, entry] of this.jtis) push('jti', jti, entry.revokedAt, entry.seenExpMs);
    for (const [sub, at] of this.subs) push('sub', sub, at);
    for (const [sub, at] of this.postureSubs) push('posture_sub', sub, at);
    return { jti: this.jtis.size, sub: this.subs.size, posture_sub: this.postureSubs.size, entries };
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
    return this.size >= this.limits.maxEntries;
  }

  get size(): number {
    return this.jtis.size + this.subs.size + this.postureSubs.size;
  }

  get maxEntries(): number {
    return this.limits.maxEntries;
  }

  /** Whether an entry revoked at `revokedAt` (exp seen: `seenExpMs`) would still be held at `now`. */
  inForce(revokedAt: number, seenExpMs: number, now = Date.now()): boolean {
    return now < this.keepUntil(revokedAt, seenExpMs);
  }

  /** When an entry may go: no grant it names can still be valid. */
  private keepUntil(revokedAt: number, seenExpMs = 0): number {
    return Math.max(revokedAt + this.limits.maxLifetimeMs + this.limits.clockSkewMs, seenExpMs);
  }

  /** Drops expired entries, looking at no more than `budget` of them; returns how many it dropped. */
  sweep(now = Date.now(), budget = this.sweepBudget): number {
    const tally = { looked: 0, dropped: 0 };
    this.jtiSweep.run(budget, tally, (entry) => now >= this.keepUntil(entry.revokedAt, entry.seenExpMs));
    this.subSweep.run(budget, tally, (revokedAt) => now >= this.keepUntil(revokedAt));
    this.postureSweep.run(budget, tally, (revokedAt) => now >= this.keepUntil(revokedAt));
    const { dropped } = tally;
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

/**
 * A sweep over one map that resumes where the last one stopped (Map iterators stay valid across
 * deletes and inserts), so each sweep looks at a bounded number of entries however many are held.
 */
class MapSweep<V> {
  private cursor: MapIterator<[string, V]> | undefined;
  private readonly map: Map<string, V>;

  constructor(map: Map<string, V>) {
    this.map = map;
  }

  /** Looks at entries while `tally.looked` is under `budget`, deleting those `expired` names. */
  run(budget: number, tally: { looked: number; dropped: number }, expired: (value: V) => boolean): void {
    this.cursor ??= this.map.entries();
    while (tally.looked < budget) {
      const next = this.cursor.next();
      if (next.done) {
        this.cursor = undefined;
        return;
      }
      tally.looked++;
      const [key, value] = next.value;
      if (expired(value)) {
        this.map.delete(key);
        tally.dropped++;
      }
    }
  }
}
