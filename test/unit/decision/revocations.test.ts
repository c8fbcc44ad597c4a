// The revocation store (SPEC "Fleet-wide revocation", last part): kept until no grant it names
// can be valid, never evicted, full at maxEntries, swept in bounded steps.
import { afterEach, describe, expect, it } from 'vitest';
import { Revocations } from '../../../src/decision/revocations.ts';

const L = 60_000; // grants.maxLifetime
const SKEW = 2_000;
const T0 = 1_800_000_000_000;

const stores: Revocations[] = [];
function store(maxEntries = 100): { r: Revocations; gauge: number[] } {
  const r = new Revocations({ sweepIntervalMs: 3_600_000 });
  const gauge: number[] = [];
  r.configure({ maxEntries, maxLifetimeMs: L, clockSkewMs: SKEW }, { set: (n) => gauge.push(n) });
  stores.push(r);
  return { r, gauge };
}
afterEach(() => {
  for (const r of stores.splice(0)) r.stop();
});

describe('Revocations', () => {
  it('a jti is refused whatever grant carries it, and kept until revocation time + maxLifetime + clockSkew', () => {
    const { r } = store();
    r.revokeJti('j', 0, T0);
    expect(r.isRevoked('j', 'spiffe://example.org/a', T0 + 50_000, T0 + 55_000)).toBe(true);
    r.sweep(T0 + L + SKEW - 1);
    expect(r.size).toBe(1);
    r.sweep(T0 + L + SKEW);
    expect(r.size).toBe(0);
  });

  it('a grant seen with a later exp keeps its jti longer: at revocation or when refused after it', () => {
    const { r } = store();
    r.revokeJti('seen', T0 + 10 * L, T0);
    r.revokeJti('later', 0, T0);
    expect(r.isRevoked('later', 's', T0, T0 + 5 * L)).toBe(true);
    r.sweep(T0 + 4 * L);
    expect([r.isRevoked('seen', 's', 0, 0), r.isRevoked('later', 's', 0, 0)]).toEqual([true, true]);
    r.sweep(T0 + 5 * L);
    expect([r.isRevoked('seen', 's', 0, 0), r.isRevoked('later', 's', 0, 0)]).toEqual([true, false]);
    r.sweep(T0 + 10 * L);
    expect(r.size).toBe(0);
  });

  it('a sub revocation refuses grants issued up to clockSkew after it, and lapses at revocation time + maxLifetime + clockSkew', () => {
    const { r } = store();
    r.revokeSub('spiffe://example.org/a', T0);
    expect(r.isRevoked('x', 'spiffe://example.org/a', T0 + SKEW, T0 + L)).toBe(true);
    expect(r.isRevoked('x', 'spiffe://example.org/a', T0 + SKEW + 1, T0 + L)).toBe(false);
    expect(r.isRevoked('x', 'spiffe://example.org/b', T0 - 1, T0 + L)).toBe(false);
    r.sweep(T0 + L + SKEW - 1);
    expect(r.size).toBe(1);
    r.sweep(T0 + L + SKEW);
    expect(r.size).toBe(0);
  });

  it('at maxEntries it is full, and never forgets one to make room: a revocation beyond the bound is kept too', () => {
    const { r, gauge } = store(3);
    r.revokeJti('a', 0, T0);
    r.revokeJti('b', 0, T0);
    expect(r.full).toBe(false);
    r.revokeSub('spiffe://example.org/c', T0);
    expect(r.full).toBe(true);
    r.revokeJti('d', 0, T0);
    expect(r.size).toBe(4);
    for (const jti of ['a', 'b', 'd']) expect(r.isRevoked(jti, 's', 0, 0)).toBe(true);
    expect(r.isRevoked('x', 'spiffe://example.org/c', T0, T0 + 1)).toBe(true);
    expect(gauge.at(-1)).toBe(4);
    r.sweep(T0 + L + SKEW);
    expect([r.full, r.size, gauge.at(-1)]).toEqual([false, 0, 0]);
  });

  it('a sweep looks at no more than its budget; the next one goes on where it stopped', () => {
    const { r } = store(1_000);
    for (let i = 0; i < 100; i++) r.revokeJti(`j${i}`, 0, T0);
    for (let i = 0; i < 50; i++) r.revokeSub(`spiffe://example.org/s${i}`, T0);
    const later = T0 + L + SKEW;
    expect(r.sweep(later, 40)).toBe(40);
    expect(r.size).toBe(110);
    expect(r.sweep(later, 40)).toBe(40);
    expect(r.sweep(later, 40)).toBe(40);
    expect(r.sweep(later, 40)).toBe(30);
    expect(r.size).toBe(0);
  });

  it('a reload that raises grants.maxLifetime keeps existing entries longer (keep times follow the config in force)', () => {
    const { r } = store();
    r.revokeJti('j', 0, T0);
    r.configure({ maxEntries: 100, maxLifetimeMs: 10 * L, clockSkewMs: SKEW });
    r.sweep(T0 + 5 * L);
    expect(r.isRevoked('j', 's', 0, 0)).toBe(true);
  });

  it('revoking again moves the revocation time forward, never back', () => {
    const { r } = store();
    r.revokeSub('spiffe://example.org/a', T0 + 10_000);
    r.revokeSub('spiffe://example.org/a', T0);
    expect(r.isRevoked('x', 'spiffe://example.org/a', T0 + 10_000 + SKEW, T0 + L)).toBe(true);
  });
});
