// Readiness in the log (issue 12, README walk-through finding 9): a line when ready flips or the
// reason's kind changes, never for its figures alone; while not ready, one reminder at most per
// interval. A real pino logger writing JSON lines; the clock is the test's.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { readinessKind, readinessLog } from '../../../src/cli/readiness-log.ts';

function capture(): { lines: { msg: string; ready: boolean; not_ready_ms?: number }[]; logger: pino.Logger } {
  const lines: { msg: string; ready: boolean; not_ready_ms?: number }[] = [];
  const sink = new Writable({
    write: (chunk: Buffer, _enc, done) => {
      for (const text of chunk.toString().split('\n')) if (text.trim() !== '') lines.push(JSON.parse(text) as (typeof lines)[number]);
      done();
    },
  });
  return { lines, logger: pino({ level: 'info' }, sink) };
}

describe('readinessLog', () => {
  it('the figures of a reason are not its kind', () => {
    expect(readinessKind('revocation bus stale: not read for 2.1s (revocation.maxStaleness 1000ms): connect ECONNREFUSED 127.0.0.1:6379')).toBe(readinessKind('revocation bus stale: not read for 14.3s (revocation.maxStaleness 1000ms): connect ECONNREFUSED 127.0.0.1:6379'));
    expect(readinessKind('revocation bus stale: not read for 2.1s')).not.toBe(readinessKind('the remote PDP is failing (circuit open)'));
    expect(readinessKind(undefined)).toBeUndefined();
  });

  it('one line per change of state or kind; a reminder at most once per interval while not ready, with how long', () => {
    const { lines, logger } = capture();
    let now = 0;
    const log = readinessLog(logger, 60_000, () => now);
    log(undefined);
    for (let s = 1; s <= 30; s++) {
      now = s * 2_000;
      log(`revocation bus stale: not read for ${s * 2}.${s % 10}s (revocation.maxStaleness 30000ms)`);
    }
    now = 62_000;
    log('revocation bus stale: not read for 62.0s (revocation.maxStaleness 30000ms)');
    now = 64_000;
    log('revocation bus stale: not read for 64.0s (revocation.maxStaleness 30000ms)');
    now = 65_000;
    log('revocation bus stale: not read for 65.0s (revocation.maxStaleness 30000ms): WRONGPASS invalid username-password pair');
    now = 66_000;
    log(undefined);
    log(undefined);
    logger.flush();
    expect(lines.map((l) => [l.ready, l.msg.replace(/ \(.*/, ''), l.not_ready_ms])).toEqual([
      [true, 'readiness changed: ready', undefined],
      [false, 'readiness changed: not ready', undefined],
      [false, 'still not ready', 60_000],
      [false, 'readiness changed: not ready', undefined],
      [true, 'readiness changed: ready', undefined],
    ]);
  });
});
