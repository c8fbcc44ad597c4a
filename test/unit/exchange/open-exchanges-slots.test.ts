// OpenExchanges keeps each bound's place on the bound itself (its tick's list and its slot there,
// moved by swap-remove): whatever the order of arrivals and endings, what is held is exactly what
// was added and not removed, revocations find exactly those, and a removed bound is never cut.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { OpenExchanges, type Bound, type CutReason } from '../../../src/exchange/open-exchanges.ts';

function bound(deadlineMs: number, jti: string): Bound & { cuts: CutReason[] } {
  const cuts: CutReason[] = [];
  return { deadlineMs, deadlineReason: 'grant_expired', jti, peerId: 'spiffe://td/a', onPosture: false, cuts, cut: (reason) => void cuts.push(reason) };
}

describe('OpenExchanges slots', () => {
  it('holds exactly what was added and not removed, in any order, across ticks', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.nat(19), fc.nat(2)), { maxLength: 200 }), (steps) => {
        const open = new OpenExchanges(() => undefined);
        const far = Date.now() + 600_000;
        const pool = Array.from({ length: 20 }, (_, i) => bound(far + (i % 3) * 1000, `j${i % 4}`));
        const held = new Set<Bound>();
        for (const [adding, which] of steps) {
          const b = pool[which]!;
          if (adding) {
            open.add(b);
            held.add(b);
          } else {
            open.remove(b);
            held.delete(b);
          }
          expect(open.size).toBe(held.size);
        }
        // A revocation by jti finds exactly the held bounds on that grant.
        const named = [...held].filter((b) => b.jti === 'j1');
        expect(open.revoke({ jti: 'j1' })).toBe(named.length);
        for (const b of pool) expect(b.cuts).toEqual(named.includes(b) ? ['grant_revoked'] : []);
        expect(open.size).toBe(held.size - named.length);
      }),
      { numRuns: 200 },
    );
  });

  it('a bound added twice is held once', () => {
    const open = new OpenExchanges(() => undefined);
    const b = bound(Date.now() + 60_000, 'j');
    open.add(b);
    open.add(b);
    expect(open.size).toBe(1);
    expect(open.revoke({ jti: 'j' })).toBe(1);
    expect(b.cuts).toEqual(['grant_revoked']);
  });

  it('when a tick comes, every bound in it is cut once, including ones that end others as they go', async () => {
    const open = new OpenExchanges(() => undefined);
    const at = Date.now() + 30;
    const bounds = Array.from({ length: 5 }, () => bound(at, 'j'));
    // Cutting the first ends the second at once (as closing a connection could).
    bounds[0]!.cut = (reason) => {
      bounds[0]!.cuts.push(reason);
      open.remove(bounds[1]!);
    };
    for (const b of bounds) open.add(b);
    await new Promise((resolve) => setTimeout(resolve, 120));
    for (const b of bounds) expect(b.cuts).toEqual(['grant_expired']);
    expect(open.size).toBe(0);
  });
});

describe('OpenExchanges timer', () => {
  it('waits for a deadline beyond 24.8 days (2^31-1 ms) instead of sweeping every millisecond', async () => {
    const warnings: string[] = [];
    const onWarning = (warning: Error) => void warnings.push(warning.name);
    process.on('warning', onWarning);
    try {
      const cuts: CutReason[] = [];
      const open = new OpenExchanges((_, reason) => void cuts.push(reason));
      // A client SVID valid for 30 days bounds its connection's exchanges to that.
      const b = bound(Date.now() + 30 * 86_400_000, 'long');
      open.add(b);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(warnings.filter((name) => name === 'TimeoutOverflowWarning')).toEqual([]);
      expect(cuts).toEqual([]);
      expect(open.size).toBe(1);
      open.remove(b);
    } finally {
      process.off('warning', onWarning);
    }
  });
});
