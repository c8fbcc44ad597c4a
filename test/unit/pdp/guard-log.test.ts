// What the PDP guard and the decision path write to the log (issue 10 section 4): every circuit
// transition, and PDP failures at most once per kind per interval with a count of the rest.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { GuardedPdp } from '../../../src/pdp/guard.ts';
import { pdpError, type Pdp, type PdpInput, type PdpResult } from '../../../src/pdp/pdp.ts';
import { RateLimitedLog } from '../../../src/decision/rate-limited-log.ts';
import type { Logger } from '../../../src/telemetry/logger.ts';

interface Line {
  level: number;
  msg: string;
  [key: string]: unknown;
}

function capture(): { logger: Logger; lines: Line[] } {
  const lines: Line[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const text of chunk.toString('utf8').split('\n')) if (text) lines.push(JSON.parse(text) as Line);
      done();
    },
  });
  return { logger: pino({ level: 'info', base: undefined }, stream), lines };
}

const INPUT = { subject: 's', posture: undefined, action: 'a', method: 'GET', resource: 'r', route: 'x', sensitivity: 'low', grant: undefined, intent: undefined, requestId: 'q', nowMs: 0 } satisfies PdpInput;
const ALLOW: PdpResult = { kind: 'allow', ttlMs: undefined, detail: undefined };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('GuardedPdp logs every circuit transition', () => {
  it('closed → open (warn), open → half-open (info), half-open → open (warn), half-open → closed (info)', async () => {
    let up = false;
    const inner: Pdp = { kind: 'authzen', evaluate: async () => (up ? ALLOW : pdpError('error', 'ECONNREFUSED')) };
    const { logger, lines } = capture();
    const guard = new GuardedPdp(inner, { maxInFlight: 4, failureThreshold: 2, openMs: 40, maxOpenMs: 200 }, logger);
    const call = () => guard.evaluate(INPUT).then((result) => (result.kind === 'error' ? 'failed' : 'ok'));
    await call();
    expect(lines).toHaveLength(0); // one failure: no transition yet
    await call();
    await call(); // fails fast while open: no new line
    await sleep(50);
    await call(); // the probe, which fails
    await sleep(90);
    up = true;
    expect(await call()).toBe('ok');
    expect(await call()).toBe('ok');
    expect(lines.map((l) => [l.level, l.circuit, l.pdp])).toEqual([
      [40, 'open', 'authzen'],
      [30, 'half-open', 'authzen'],
      [40, 'open', 'authzen'],
      [30, 'half-open', 'authzen'],
      [30, 'closed', 'authzen'],
    ]);
    expect(lines[0]).toMatchObject({ failures: 2, open_ms: 40 });
    expect(lines[2]).toMatchObject({ open_ms: 80 });
  });
});

describe('RateLimitedLog', () => {
  it('writes at most one line per kind per interval, and the next one says how many were left out', () => {
    const { logger, lines } = capture();
    const log = new RateLimitedLog(logger, 10_000);
    for (let i = 0; i < 50; i++) log.warn('timeout', { outcome: 'timeout' }, 'PDP call failed', 1_000 + i);
    log.warn('error', { outcome: 'error' }, 'PDP call failed', 1_100);
    log.warn('timeout', { outcome: 'timeout' }, 'PDP call failed', 10_999);
    log.warn('timeout', { outcome: 'timeout' }, 'PDP call failed', 11_000);
    expect(lines.map((l) => [l.level, l.outcome, l.suppressed])).toEqual([
      [40, 'timeout', 0],
      [40, 'error', 0],
      [40, 'timeout', 50],
    ]);
  });
});
