// The audit log's flush must finish whenever lines are still being written: shutdown awaits it.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createAuditLog, type AuditRecord } from '../../../src/telemetry/audit.ts';

const dir = mkdtempSync(join(tmpdir(), 'audit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const record = (id: string): AuditRecord => ({
  time: '2026-11-30T00:00:00.000Z', request_id: id, peer: 'spiffe://example.org/ns/prod/sa/web', action: 'orders.refund', resource: 'order:1', route: 'refund',
  decision: 'allow', reason: 'allowed', source: 'pdp', grant_jti: 'g1', approver: undefined, justification: undefined, intent: undefined, posture_tier: undefined, latency_ms: 0.1, mode: 'enforce',
});

describe('audit log flush', () => {
  it('resolves right after a small write that is still in flight, with the line on disk', async () => {
    const file = join(dir, 'a.log');
    const audit = createAuditLog(file);
    audit.write(record('r1'));
    const flushed = await Promise.race([audit.flush().then(() => 'flushed'), new Promise((r) => setTimeout(() => r('hung'), 2000))]);
    expect(flushed).toBe('flushed');
    expect(JSON.parse(readFileSync(file, 'utf8').trim())).toMatchObject({ request_id: 'r1', decision: 'allow' });
  });

  it('resolves at once when nothing is pending, and after a large backlog', async () => {
    const audit = createAuditLog(join(dir, 'b.log'));
    await audit.flush();
    for (let i = 0; i < 5000; i++) audit.write(record(`r${i}`));
    await audit.flush();
    expect(readFileSync(join(dir, 'b.log'), 'utf8').trim().split('\n')).toHaveLength(5000);
  });
});
