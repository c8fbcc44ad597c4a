import { describe, expect, it } from 'vitest';
import { OpenExchanges, type Bound, type CutReason } from '../../../src/exchange/open-exchanges.ts';

function bound(deadlineMs: number, extra: Partial<Bound> = {}): Bound & { cuts: CutReason[] } {
  const cuts: CutReason[] = [];
  return { deadlineMs, deadlineReason: 'grant_expired', jti: 'j', peerId: 'spiffe://td/a', onPosture: false, ...extra, cuts, cut: (reason) => void cuts.push(reason) };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('OpenExchanges', () => {
  it('cuts each bound at its deadline, in order, within a tick or two, and none early', async () => {
    const seen: string[] = [];
    const open = new OpenExchanges((b) => seen.push(`${(b as Bound & { name: string }).name}@${Date.now() - start}`));
    const start = Date.now();
    const late = Object.assign(bound(start + 150), { name: 'late' });
    const early = Object.assign(bound(start + 60), { name: 'early' });
    open.add(late);
    open.add(early);
    await sleep(40);
    expect(seen).toEqual([]);
    await sleep(180);
    expect(seen.map((s) => s.split('@')[0])).toEqual(['early', 'late']);
    for (const s of seen) {
      const [name, at] = s.split('@');
      const due = name === 'early' ? 60 : 150;
      expect(Number(at)).toBeGreaterThanOrEqual(due);
      expect(Number(at) - due).toBeLessThan(60);
    }
    expect(early.cuts).toEqual(['grant_expired']);
    expect(open.size).toBe(0);
  });

  it('a bound removed before its deadline is never cut; one already due is cut at once', async () => {
    const open = new OpenExchanges(() => undefined);
    const b = bound(Date.now() + 40);
    open.add(b);
    open.remove(b);
    await sleep(80);
    expect(b.cuts).toEqual([]);
    const due = bound(Date.now() - 1);
    open.add(due);
    expect(due.cuts).toEqual(['grant_expired']);
  });

  it('a revocation cuts exactly what it names: by jti, by sub (grant-bound only), by posture sub', () => {
    const open = new OpenExchanges(() => undefined);
    const far = Date.now() + 60_000;
    const a = bound(far, { jti: 'a', peerId: 'spiffe://td/x' });
    const b = bound(far, { jti: 'b', peerId: 'spiffe://td/y' });
    const noGrant = bound(far, { jti: undefined, peerId: 'spiffe://td/y', onPosture: true });
    for (const x of [a, b, noGrant]) open.add(x);
    expect(open.revoke({ jti: 'a' })).toBe(1);
    expect(a.cuts).toEqual(['grant_revoked']);
    expect(open.revoke({ sub: 'spiffe://td/y' })).toBe(1);
    expect(b.cuts).toEqual(['grant_revoked']);
    expect(noGrant.cuts).toEqual([]);
    expect(open.revoke({ postureSub: 'spiffe://td/y' })).toBe(1);
    expect(noGrant.cuts).toEqual(['posture_revoked']);
    expect(open.size).toBe(0);
  });

  it('exchanges that come and go on one grant (one deadline) keep one tick, however many there are', () => {
    const open = new OpenExchanges(() => undefined);
    const exp = Date.now() + 600_000;
    for (let i = 0; i < 10_000; i++) {
      const b = bound(exp);
      open.add(b);
      open.remove(b);
    }
    expect(open.size).toBe(0);
    // Before: a tick pushed onto the heap per exchange, kept until the grant's exp (memory that
    // grew with request rate × grant lifetime).
    expect(open.ticksPending).toBe(1);
  });

  it('arms one timer for the earliest deadline only: far deadlines cost no wake-ups', async () => {
    const open = new OpenExchanges(() => undefined);
    const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    open.add(bound(Date.now() + 3_600_000));
    open.add(bound(Date.now() + 7_200_000));
    expect(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length - before).toBeLessThanOrEqual(1);
  });
});
