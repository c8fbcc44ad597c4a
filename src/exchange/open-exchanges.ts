// Every exchange still open on grounds that can end (SPEC "Protocols and streams", Streams): a
// grant's exp, a posture assertion's deadline, a peer SVID's notAfter, or a revocation. One timer
// mechanism for all of them, whatever the protocol: deadlines fall into 25 ms ticks, a min-heap
// orders the ticks that hold anything, and one timer is armed for the earliest, so an exchange
// ends well within SPEC's 100 ms of its grounds and an idle sidecar (connections whose SVIDs
// expire in hours) does not wake up at all. Revocations scan what is open: they are rare, and
// requests then pay nothing to index what a revocation might name.

/** Why an open exchange was cut: the SPEC's stream reasons, and the connection's own. */
export type CutReason = 'grant_expired' | 'grant_revoked' | 'posture_stale' | 'posture_revoked' | 'svid_expired';

/** Something that must end when its grounds do (an exchange, or a client connection). */
export interface Bound {
  /** Epoch ms at which it must end, and why. */
  readonly deadlineMs: number;
  readonly deadlineReason: CutReason;
  /** The grant it rests on (jti), if any; the peer (a grant's sub is always its peer). */
  readonly jti: string | undefined;
  readonly peerId: string;
  /** Whether it rests on a posture assertion of the peer (SPEC: a posture revocation ends it). */
  readonly onPosture: boolean;
  /** Ends it now, in its protocol's way; called at most once. */
  cut(reason: CutReason): void;
  /**
   * OpenExchanges' own bookkeeping, kept on the bound itself: the list of the tick holding it
   * (undefined: not held) and its index there. Exchange and ClientConnection declare them (so
   * they live in the object from the start); any other object gets them when added.
   */
  openList?: Bound[] | undefined;
  openSlot?: number;
}

const TICK_MS = 25;

export interface Revoked {
  readonly jti?: string | undefined;
  readonly sub?: string | undefined;
  readonly postureSub?: string | undefined;
}

/**
 * Membership is kept on the bounds themselves (their tick and their slot in that tick's array),
 * not in a Map and a Set keyed by them: an exchange comes and goes on every privileged request,
 * and a hash table with that churn rehashes every few dozen of them. Once the table is in the
 * old generation, V8 allocates each rehashed copy there too, so the churn became old-generation
 * garbage that only a full GC frees: the cached load bench's heap grew to about 210 MiB (104
 * without tracking). An array per tick with swap-remove allocates nothing per request.
 */
/** The longest delay setTimeout honours (a signed 32-bit count of milliseconds). */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class OpenExchanges {
  private readonly ticks = new Map<number, Bound[]>();
  private count = 0;
  /** Ticks that held something when added, earliest first; a tick emptied since is skipped. */
  private readonly heap = new TickHeap();
  private timer: NodeJS.Timeout | undefined;
  /** The tick the timer is armed for (Infinity: none). */
  private armedFor = Infinity;
  private readonly onCut: (bound: Bound, reason: CutReason) => void;
  private readonly onTimer = (): void => this.sweep(Date.now());

  /** `onCut` counts and audits each cut (it runs before the bound's own cut). */
  constructor(onCut: (bound: Bound, reason: CutReason) => void) {
    this.onCut = onCut;
  }

  get size(): number {
    return this.count;
  }

  /** Ticks waiting in the heap: one per distinct deadline tick, not one per exchange. */
  get ticksPending(): number {
    return this.heap.size;
  }

  /** Tracks `bound` until removed or cut; one already past its deadline is cut at once. */
  add(bound: Bound, now = Date.now()): void {
    if (bound.deadlineMs <= now) {
      this.fire(bound, bound.deadlineReason);
      return;
    }
    // Held already (never done today): its one place moves, it is never held twice.
    if (bound.openList !== undefined) this.remove(bound);
    const tick = Math.ceil(bound.deadlineMs / TICK_MS);
    let list = this.ticks.get(tick);
    if (list === undefined) {
      this.ticks.set(tick, (list = []));
      this.heap.push(tick);
    }
    bound.openList = list;
    bound.openSlot = list.length;
    list.push(bound);
    this.count++;
    if (tick < this.armedFor) this.arm(tick, now);
  }

  /** The exchange ended on its own: nothing to cut. */
  remove(bound: Bound): void {
    const list = bound.openList;
    if (list === undefined) return;
    bound.openList = undefined;
    this.count--;
    // An emptied tick keeps its list until its time: the next exchange on the same grant (same
    // exp, same tick) reuses it. Dropping it would push the tick onto the heap again on every
    // request, a heap that grows with request rate × grant lifetime until the tick comes.
    const slot = bound.openSlot!;
    const last = list.pop()!;
    if (last !== bound) {
      list[slot] = last;
      last.openSlot = slot;
    }
  }

  /** Cuts every open exchange the revocation names; returns how many. */
  revoke(revoked: Revoked): number {
    const doomed: [Bound, CutReason][] = [];
    for (const list of this.ticks.values()) {
      for (const bound of list) {
        if ((revoked.jti !== undefined && bound.jti === revoked.jti) || (revoked.sub !== undefined && bound.jti !== undefined && bound.peerId === revoked.sub)) doomed.push([bound, 'grant_revoked']);
        else if (revoked.postureSub !== undefined && bound.onPosture && bound.peerId === revoked.postureSub) doomed.push([bound, 'posture_revoked']);
      }
    }
    for (const [bound, reason] of doomed) {
      this.remove(bound);
      this.fire(bound, reason);
    }
    return doomed.length;
  }

  private arm(tick: number, now: number): void {
    clearTimeout(this.timer);
    this.armedFor = tick;
    // Node runs a timer over 2^31-1 ms after 1 ms (with a TimeoutOverflowWarning): a 30-day
    // SVID's deadline made an idle proxy sweep and warn a thousand times a second. A capped timer
    // that fires early finds nothing due and arms again for what is left.
    this.timer = setTimeout(this.onTimer, Math.min(MAX_TIMER_MS, Math.max(0, tick * TICK_MS - now)));
    this.timer.unref();
  }

  private sweep(now: number): void {
    this.timer = undefined;
    this.armedFor = Infinity;
    const last = Math.floor(now / TICK_MS);
    for (let tick = this.heap.peek(); tick !== undefined && tick <= last; tick = this.heap.peek()) {
      this.heap.pop();
      const list = this.ticks.get(tick);
      if (list === undefined) continue;
      this.ticks.delete(tick);
      // All of the tick leave first: a cut that ends another of them at once finds it gone.
      for (const bound of list) bound.openList = undefined;
      this.count -= list.length;
      for (const bound of list) this.fire(bound, bound.deadlineReason);
    }
    // The timer waits for the next tick known (it may have emptied since: then it cuts nothing).
    const next = this.heap.peek();
    if (next !== undefined) this.arm(next, now);
  }

  private fire(bound: Bound, reason: CutReason): void {
    this.onCut(bound, reason);
    bound.cut(reason);
  }
}

/** A binary min-heap of tick numbers. */
class TickHeap {
  private readonly items: number[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): number | undefined {
    return this.items[0];
  }

  push(tick: number): void {
    const items = this.items;
    let at = items.push(tick) - 1;
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (items[parent]! <= tick) break;
      items[at] = items[parent]!;
      at = parent;
    }
    items[at] = tick;
  }

  pop(): void {
    const items = this.items;
    const last = items.pop();
    if (last === undefined || items.length === 0) return;
    let at = 0;
    for (;;) {
      const left = 2 * at + 1;
      if (left >= items.length) break;
      const right = left + 1;
      const child = right < items.length && items[right]! < items[left]! ? right : left;
      if (items[child]! >= last) break;
      items[at] = items[child]!;
      at = child;
    }
    items[at] = last;
  }
}
