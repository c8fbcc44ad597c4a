// The allocation budget of the hot path (issue 15 item 4): heap bytes allocated per cache-hit
// decision, against the committed figure in test/budgets/allocations.json. Bytes, never times:
// what one call allocates is the same on a loaded machine and a quiet one, so this cannot flake
// on a busy CI runner the way a timing would. Measured by bench/alloc/decision.ts in a plain Node
// child (the fixture and counter of bench/micro/run.ts's first row; vitest's transform of the
// sources allocates differently).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const budgets = JSON.parse(readFileSync(new URL('../budgets/allocations.json', import.meta.url), 'utf8')) as Record<string, { measured: number; budget: number }>;

describe('allocation budget', () => {
  it('a cache-hit decision allocates no more than its committed budget', () => {
    const script = fileURLToPath(new URL('../../bench/alloc/decision.ts', import.meta.url));
    const out = JSON.parse(execFileSync(process.execPath, [script], { encoding: 'utf8', timeout: 60_000 })) as { allowed: boolean; 'decision, cache hit': number };
    // The call measured is the cache hit it claims to be: a synchronous allow.
    expect(out.allowed).toBe(true);
    const measured = Math.round(out['decision, cache hit']);
    const { budget } = budgets['decision, cache hit']!;
    expect(measured, `a cache-hit decision allocates ${measured} bytes, over its budget of ${budget} (test/budgets/allocations.json)`).toBeLessThanOrEqual(budget);
    // Not vacuous: the counter sees the audit record and the key every hit makes.
    expect(measured).toBeGreaterThan(100);
  });
});
