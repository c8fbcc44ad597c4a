// The jti replay memory of the Shared Signals receiver (SPEC "Shared Signals receiver": "a jti
// not seen before"). A SET is accepted only while its iat is within the 10-minute window, so a
// jti needs remembering only until its SET could no longer be accepted anyway: every entry
// expires at iat + window + skew, and the memory is bounded by the window. At the hard cap it
// refuses new SETs (the transmitter retries, RFC 8935 push delivery) rather than forget a jti
// still in its window: forgetting one would let a replay through.

/** Entries held at most: 100,000 SETs within 10 minutes is ~170 per second, sustained. */
export const MAX_REPLAY_ENTRIES = 100_000;

export type Remembered = 'new' | 'replay' | 'full';

export class ReplayMemory {
  /** key (issuer + jti) → epoch ms after which the SET could not be accepted anyway. */
  readonly #seen = new Map<string, number>();
  #sweptAt = 0;

  readonly maxEntries: number;

  constructor(maxEntries: number = MAX_REPLAY_ENTRIES) {
    this.maxEntries = maxEntries;
  }

  get size(): number {
    return this.#seen.size;
  }

  /**
   * Checks and records in one synchronous step, so two copies of one SET verified concurrently
   * cannot both pass.
   */
  remember(issuer: string, jti: string, untilMs: number, now = Date.now()): Remembered {
    const key = `${issuer}\u0000${jti}`;
    const until = this.#seen.get(key);
    if (until !== undefined && until > now) return 'replay';
    this.#sweep(now);
    if (this.#seen.size >= this.maxEntries) {
      // Sweep at once, not on the second's schedule, before refusing.
      this.#sweep(now, true);
      if (this.#seen.size >= this.maxEntries) return 'full';
    }
    this.#seen.delete(key);
    this.#seen.set(key, untilMs);
    return 'new';
  }

  /** Forgets a jti whose SET was not applied after all (the transmitter may send it again). */
  forget(issuer: string, jti: string): void {
    this.#seen.delete(`${issuer}\u0000${jti}`);
  }

  /** At most once a second: O(entries), and entries are few compared to that. */
  #sweep(now: number, force = false): void {
    if (!force && now - this.#sweptAt < 1_000) return;
    this.#sweptAt = now;
    for (const [key, until] of this.#seen) if (until <= now) this.#seen.delete(key);
  }
}
