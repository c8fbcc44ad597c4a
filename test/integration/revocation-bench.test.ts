// The revocation bench is not a test, but its harness must work (issue 12 item 7): one tiny run
// (--quick) on a real redis-server and three real sidecar processes, every scenario producing
// its figures. Only what is not timing is asserted: timings live in bench/README.md.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const BENCH = fileURLToPath(new URL('../../bench/revocation/run.ts', import.meta.url));

interface Row {
  count: number;
  within100: number;
  e2eP99: number;
  caughtUpMs: number;
  entries: number;
  load: { ok: number; other: number };
}

describe('revocation bench harness', () => {
  it('runs the three scenarios with tiny sizes and reports lag, keeping up and start-up', { timeout: 60_000 }, async () => {
    const { stdout } = await run(process.execPath, [BENCH, '--quick', '--json'], { timeout: 55_000 });
    const figures = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
      lag: { revocations: number; perSidecar: Row[]; wrongReason: number };
      rate: { total: number; published: number; failed: number; xlen: number; keptUp: boolean; perSidecar: Row[] };
      startup: { entries: number; loaded: { entries: number; readyMs: number; rss: number; first: { status: number; reason?: string } }; base: { entries: number } };
    };
    // 1. Every revocation reached every sidecar under load, read from its lag histogram, and a
    //    request carrying each revoked grant was refused with grant_revoked.
    expect(figures.lag.perSidecar).toHaveLength(3);
    for (const row of figures.lag.perSidecar) {
      expect(row.count).toBe(figures.lag.revocations);
      expect(Number.isFinite(row.e2eP99)).toBe(true);
      expect(row.load.ok).toBeGreaterThan(0);
      expect(row.load.other).toBe(0);
    }
    expect(figures.lag.wrongReason).toBe(0);
    // 2. The burst was published whole and each sidecar read up to the tail and holds it all.
    expect(figures.rate.published).toBe(figures.rate.total);
    expect(figures.rate.failed).toBe(0);
    expect(figures.rate.keptUp).toBe(true);
    for (const row of figures.rate.perSidecar) {
      expect(row.count).toBe(figures.rate.total);
      expect(row.entries).toBe(figures.rate.xlen);
    }
    // 3. The pre-filled stream was read whole before ready; a privileged request before then is
    //    refused (revocation_unavailable), never allowed — unless the read beat the first answer.
    expect(figures.startup.base.entries).toBe(0);
    expect(figures.startup.loaded.entries).toBe(figures.startup.entries);
    expect(figures.startup.loaded.rss).toBeGreaterThan(0);
    if (figures.startup.loaded.first.status !== 200) expect(figures.startup.loaded.first).toMatchObject({ status: 503, reason: 'revocation_unavailable' });
  });
});
