// The bench is not a test, but its harness must work: one tiny run of every Portcullis case,
// side by side with the direct upstream, producing the table.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const BENCH = fileURLToPath(new URL('../../bench/run.ts', import.meta.url));

describe('bench harness', () => {
  it('runs each case once with tiny load and prints the table', { timeout: 90_000 }, async () => {
    const { stdout } = await run(process.execPath, [BENCH, '--quick', '--cases', 'direct,open,cached,uncached,remote'], { timeout: 80_000 });
    const header = stdout.split('\n').find((line) => line.startsWith('| case |'))!.split('|').map((c) => c.trim());
    const column = (name: string) => header.indexOf(name);
    const rows = stdout.split('\n').filter((line) => /^\| (direct|open|cached|uncached|remote) \|/.test(line));
    expect(rows.map((r) => r.split('|')[1]!.trim())).toEqual(['direct', 'open', 'cached', 'uncached', 'remote']);
    for (const row of rows) {
      const cells = row.split('|').map((c) => c.trim());
      expect(Number(cells[column('req/s')]), row).toBeGreaterThan(0);
      expect(cells[column('errors')], row).toBe('0'); // no errors, no non-2xx: every privileged request was allowed
      // CPU per request is read from /proc for the case's own processes.
      if (process.platform === 'linux') expect(Number(cells[column('CPU µs/req')]), row).toBeGreaterThan(0);
    }
    expect(stdout).toMatch(/^machine: \d+ × /m);
  });
});
