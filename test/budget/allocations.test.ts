// The allocation budget of the hot path (issue 15 item 4): heap bytes allocated per cache-hit
// decision, per exchange admitted and ended in OpenExchanges, and per HTTP/1.1 request read and
// answered by our reader and writer, against the committed figures
// in test/budgets/allocations.json. Bytes, never times: what one call allocates is the same on a
// loaded machine and a quiet one, so this cannot flake on a busy CI runner the way a timing
// would. Measured by bench/alloc/hot-path.ts in a plain Node child (the fixture and counter of
// bench/micro/run.ts's first row; vitest's transform of the sources allocates differently).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

const budgets = JSON.parse(readFileSync(new URL('../budgets/allocations.json', import.meta.url), 'utf8')) as Record<string, { measured: number; budget: number }>;

type Measured = { allowed: boolean; openSize: number } & Record<string, number>;

describe('allocation budget', () => {
  let measured: Measured;
  beforeAll(() => {
    const script = fileURLToPath(new URL('../../bench/alloc/hot-path.ts', import.meta.url));
    measured = JSON.parse(execFileSync(process.execPath, [script], { encoding: 'utf8', timeout: 60_000 })) as Measured;
  });

  const withinBudget = (name: string) => {
    const bytes = Math.round(measured[name]!);
    const { budget } = budgets[name]!;
    expect(bytes, `${name}: ${bytes} bytes per call, over its budget of ${budget} (test/budgets/allocations.json)`).toBeLessThanOrEqual(budget);
    return bytes;
  };

  it('a cache-hit decision allocates no more than its committed budget', () => {
    // The call measured is the cache hit it claims to be: a synchronous allow.
    expect(measured.allowed).toBe(true);
    // Not vacuous: the counter sees the audit record and the key every hit makes.
    expect(withinBudget('decision, cache hit')).toBeGreaterThan(100);
  });

  it('admitting and ending an exchange on a grant allocates no more than its committed budget', () => {
    // The 32 exchanges the measurement keeps open are all still held.
    expect(measured.openSize).toBe(32);
    withinBudget('open exchanges, add + remove');
  });

  it('reading an HTTP/1.1 request and writing its answer allocates no more than its committed budget', () => {
    // Every request pushed was read and answered on the one connection, which stayed open.
    expect(measured.http1Answered).toBeGreaterThanOrEqual(200_000);
    expect(measured.http1Destroyed).toBe(false);
    // …and each answer's body reached the socket (the handler counting it is not enough).
    expect(measured.http1Bodies).toBe(measured.http1Answered);
    // Not vacuous: the two 603-character tokens alone are over 1,200 bytes of strings.
    expect(withinBudget('HTTP/1.1 request read and answered')).toBeGreaterThan(1200);
  });
});
