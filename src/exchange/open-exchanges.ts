// Every exchange still open on grounds that can end (SPEC "Protocols and streams", Streams): a
// grant's exp, a posture assertion's deadline, a peer SVID's notAfter, or a revocation. One timer
// mechanism for all of them, whatever the protocol: deadlines fall into 25 ms ticks, and one
// interval (running only while anything is tracked) cuts what each tick holds, so an exchange
// ends well within SPEC's 100 ms of its grounds. Revocations scan what is open: they are rare,
// and requests then pay nothing to index what a revocation might name.

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
}

const TICK_MS = 25;

export interface Revoked {
  readonly jti?: string | undefined;
  readonly sub?: string | undefined;
  readonly postureSub?: string | undefined;
}

export class OpenExchanges {
  private readonly ticks = new Map<number, Set<Bound>>();
  private readonly tickOf = new Map<Bound, number>();
  private timer: NodeJS.Timeout | undefined;
  /** The last tick whose bounds have been cut. */
  private done = 0;
  private readonly onCut: (bound: Bound, reason: CutReason) => void;

  /** `onCut` counts and audits each cut (it runs before the bound's own cut). */
  constructor(onCut: (bound: Bound, reason: CutReason) => void) {
    this.onCut = onCut;
  }

  get size(): number {
    return this.tickOf.size;
  }

  /** Tracks `bound` until removed or cut; one already past its deadline is cut at once. */
  add(bound: Bound, now = Date.now()): void {
    if (bound.deadlineMs <= now) {
      this.fire(bound, bound.deadlineReason);
      return;
    }
    const tick = Math.ceil(bound.deadlineMs / TICK_MS);
    let set = this.ticks.get(tick);
    if (set === undefined) this.ticks.set(tick, (set = new Set()));
    set.add(bound);
    this.tickOf.set(bound, tick);
    if (this.timer === undefined) {
      this.done = Math.floor(now / TICK_MS);
      this.timer = setInterval(() => this.sweep(Date.now()), TICK_MS);
      this.timer.unref();
    }
  }

  /** The exchange ended on its own: nothing to cut. */
  remove(bound: Bound): void {
    const tick = this.tickOf.get(bound);
    if (tick === undefined) return;
    this.tickOf.delete(bound);
    const set = this.ticks.get(tick)!;
    set.delete(bound);
    if (set.size === 0) this.ticks.delete(tick);
    this.stopIfIdle();
  }

  /** Cuts every open exchange the revocation names; returns how many. */
  revoke(revoked: Revoked): number {
    const doomed: [Bound, CutReason][] = [];
    for (const bound of this.tickOf.keys()) {
      if ((revoked.jti !== undefined && bound.jti === revoked.jti) || (revoked.sub !== undefined && bound.jti !== undefined && bound.peerId === revoked.sub)) doomed.push([bound, 'grant_revoked']);
      else if (revoked.postureSub !== undefined && bound.onPosture && bound.peerId === revoked.postureSub) doomed.push([bound, 'posture_revoked']);
    }
    for (const [bound, reason] of doomed) {
      this.remove(bound);
      this.fire(bound, reason);
    }
    return doomed.length;
  }

  private sweep(now: number): void {
    const last = Math.floor(now / TICK_MS);
    for (let tick = this.done + 1; tick <= last; tick++) {
      const set = this.ticks.get(tick);
      if (set === undefined) continue;
      this.ticks.delete(tick);
      for (const bound of set) {
        this.tickOf.delete(bound);
        this.fire(bound, bound.deadlineReason);
      }
    }
    this.done = last;
    this.stopIfIdle();
  }

  private fire(bound: Bound, reason: CutReason): void {
    this.onCut(bound, reason);
    bound.cut(reason);
  }

  private stopIfIdle(): void {
    if (this.timer !== undefined && this.tickOf.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}
