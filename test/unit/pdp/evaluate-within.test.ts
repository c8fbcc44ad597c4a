// pdp.timeout and our own bugs as values (src/pdp/evaluate-within.ts): a PDP that does not
// answer in time is `timeout`, a throw or a rejection is `error`, an answer passes unchanged and
// a synchronous PDP stays synchronous (the embedded PDP costs no promise).
import { describe, expect, it } from 'vitest';
import { evaluateWithin } from '../../../src/pdp/evaluate-within.ts';
import { pdpError, type Pdp, type PdpInput, type PdpResult } from '../../../src/pdp/pdp.ts';

const INPUT = { subject: 's', posture: undefined, action: 'a', method: 'GET', resource: 'r', route: 'x', sensitivity: 'low', grant: undefined, intent: undefined, requestId: 'q', nowMs: 0 } satisfies PdpInput;
const ALLOW: PdpResult = { kind: 'allow', ttlMs: 5_000, detail: 'rule r' };
const pdp = (evaluate: Pdp['evaluate']): Pdp => ({ kind: 'test', evaluate });

describe('evaluateWithin', () => {
  const rows: { name: string; pdp: Pdp; expected: PdpResult }[] = [
    { name: 'a synchronous answer', pdp: pdp(() => ALLOW), expected: ALLOW },
    { name: 'an asynchronous answer', pdp: pdp(async () => ALLOW), expected: ALLOW },
    { name: 'an error value from the PDP', pdp: pdp(async () => pdpError('circuit_open', 'circuit open')), expected: pdpError('circuit_open', 'circuit open') },
    {
      name: 'a synchronous throw (a bug)',
      pdp: pdp(() => {
        throw new Error('rule table corrupt');
      }),
      expected: pdpError('error', 'rule table corrupt'),
    },
    { name: 'a rejection (a bug)', pdp: pdp(() => Promise.reject(new TypeError('x is undefined'))), expected: pdpError('error', 'x is undefined') },
    { name: 'a rejection with a non-Error', pdp: pdp(() => Promise.reject('boom' as unknown as Error)), expected: pdpError('error', 'boom') },
    { name: 'no answer in time', pdp: pdp(() => new Promise<PdpResult>(() => undefined)), expected: pdpError('timeout', 'no answer within 30 ms') },
    { name: 'an answer after the deadline', pdp: pdp(() => new Promise<PdpResult>((resolve) => setTimeout(() => resolve(ALLOW), 80))), expected: pdpError('timeout', 'no answer within 30 ms') },
  ];
  it.each(rows)('$name → $expected.kind', async (row) => {
    expect(await evaluateWithin(row.pdp, INPUT, 30)).toEqual(row.expected);
  });

  it('keeps a synchronous PDP synchronous, and never rejects', async () => {
    expect(evaluateWithin(pdp(() => ALLOW), INPUT, 30)).toBe(ALLOW);
    const thrown = evaluateWithin(
      pdp(() => {
        throw new Error('bug');
      }),
      INPUT,
      30,
    );
    expect(thrown).not.toBeInstanceOf(Promise);
    await expect(evaluateWithin(pdp(() => Promise.reject(new Error('bug'))), INPUT, 30)).resolves.toMatchObject({ kind: 'error' });
  });

  it('answers the timeout at the deadline, not later', async () => {
    const started = performance.now();
    await evaluateWithin(pdp(() => new Promise<PdpResult>(() => undefined)), INPUT, 50);
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(49);
    expect(elapsed).toBeLessThan(250);
  });
});
