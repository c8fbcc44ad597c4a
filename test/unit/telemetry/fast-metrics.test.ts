// The request-path metrics must expose exactly what prom-client's own Histogram and Counter
// would for the same observations.
import fc from 'fast-check';
import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { FastHistogram } from '../../../src/telemetry/fast-histogram.ts';
import { createMetrics } from '../../../src/telemetry/metrics.ts';

const BUCKETS = [0.000_005, 0.001, 0.25, 1];

describe('FastHistogram', () => {
  it('exposes the same buckets, sum and count as prom-client for any observations', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.constantFrom('cache', 'pdp'), fc.oneof(fc.double({ min: 0, max: 2, noNaN: true }), fc.constantFrom(...BUCKETS))), { maxLength: 50 }), async (observations) => {
        const ours = new Registry();
        const theirs = new Registry();
        const fast = new FastHistogram({ name: 'h', help: 'h', labelName: 'source', buckets: BUCKETS, registers: [ours] });
        const reference = new Histogram({ name: 'h', help: 'h', labelNames: ['source'], buckets: BUCKETS, registers: [theirs] });
        for (const [source, value] of observations) {
          fast.observe(fast.cell(source), value);
          reference.observe({ source }, value);
        }
        const lines = (text: string) => text.split('\n').filter((l) => l && !l.startsWith('#')).sort();
        const mine = lines(await ours.metrics());
        const expected = lines(await theirs.metrics());
        // Sums may differ in the last bit of floating point: compare those numerically.
        expect(mine.map((l) => l.replace(/ .*$/, ''))).toEqual(expected.map((l) => l.replace(/ .*$/, '')));
        mine.forEach((line, i) => expect(Number(line.split(' ')[1])).toBeCloseTo(Number(expected[i]!.split(' ')[1]), 9));
      }),
      { numRuns: 100 },
    );
  });
});

describe('BatchedCounter', () => {
  it('shows exact counts at every scrape, and keeps counting after one', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const cell = metrics.decisions.cell('refund', 'allow', 'allowed', 'cache');
    for (let i = 0; i < 5; i++) cell.n++;
    metrics.decisions.inc('refund', 'deny', 'grant_expired', 'local');
    const first = await metrics.registry.metrics();
    expect(first).toContain('portcullis_decisions_total{route="refund",decision="allow",reason="allowed",source="cache"} 5');
    expect(first).toContain('portcullis_decisions_total{route="refund",decision="deny",reason="grant_expired",source="local"} 1');
    cell.n += 2;
    expect(await metrics.registry.metrics()).toContain('portcullis_decisions_total{route="refund",decision="allow",reason="allowed",source="cache"} 7');
    metrics.cacheHits.cell().n += 3;
    expect(await metrics.registry.metrics()).toMatch(/^portcullis_cache_hits_total 3$/m);
  });
});
