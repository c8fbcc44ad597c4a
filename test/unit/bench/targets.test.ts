// Issue 15's targets table (bench/load/targets.ts) from made-up measurements: the verdicts, the
// gap when a target is missed, and "not measured" with the reason when a case did not run.
import { describe, expect, it } from 'vitest';
import { targetRows, targetTable, type TargetInputs } from '../../../bench/load/targets.ts';
import type { IdleResult } from '../../../bench/load/idle-connections.ts';

const idle = (connections: number, open: number, extraMiB: number): IdleResult => ({ connections, open, failed: 0, closedEarly: 0, rssBeforeMiB: 100, rssAfterMiB: 100 + extraMiB, extraMiB, perConnectionKiB: (extraMiB * 1024) / open, openingMs: 20_000, serverCpuMsPerConnection: 1.5, generatorCpuMsPerConnection: 1.4, generatorRssMiB: 700 });
const start = (listenMs: number, idleRssMiB: number) => ({ listenMs, logMs: listenMs - 1, idleRssMiB });

function inputs(over: Partial<TargetInputs> = {}): TargetInputs {
  return {
    build: 'dist/',
    startup: { portcullis: [start(300, 58), start(350, 59), start(900, 200)], bare: [start(80, 52), start(90, 53), start(70, 51)] },
    idle: { portcullis: idle(10_000, 10_000, 120), bare: idle(10_000, 10_000, 700) },
    cases: {
      open: { proxyUs: 28, p99: 3, rssMiB: 90 },
      cached: { proxyUs: 33.6, p99: 3.73, rssMiB: 120 },
      nginx: { proxyUs: 16.8, p99: 1.66 },
      'nginx+auth_request': { proxyUs: 37.9, p99: 3.24 },
      'grpc-cached': { proxyUs: 40, p99: 80 },
      'grpc-nginx': { proxyUs: 44.5, p99: 44 },
    },
    whyMissing: () => 'nginx not found and not installable here',
    connections: 32,
    streams: 4,
    ...over,
  };
}

const byFigure = (rows: ReturnType<typeof targetRows>) => new Map(rows.map((r) => [r.figure, r]));

describe('issue 15 targets table', () => {
  it('has the issue\'s eight figures in its order, judged against target and moonshot', () => {
    const rows = targetRows(inputs());
    expect(rows.map((r) => r.figure)).toEqual([
      'idle RSS after start (dist/, embedded PDP)',
      'RSS under the 32-connection load',
      'start to listening (dist/)',
      'CPU per cached authorized HTTP/1.1 request ÷ nginx proxying with no authorization',
      'the same ÷ nginx + auth_request (per CPU)',
      'CPU per cached gRPC unary call ÷ nginx grpc_pass',
      '10,000 idle mTLS keep-alive connections, extra RSS',
      'p99 cached ÷ p99 nginx at the same concurrency',
    ]);
    const row = byFigure(rows);
    // Medians: 59 MiB against bare Node's 52, 0.35 s.
    expect(row.get('idle RSS after start (dist/, embedded PDP)')).toMatchObject({ value: 59, met: 'yes (moonshot missed by 7.0 MiB)', moonshot: '≤ bare Node (52.0 MiB this run)' });
    expect(row.get('start to listening (dist/)')!.value).toBeCloseTo(0.35);
    // The larger of cached and open, named.
    expect(row.get('RSS under the 32-connection load')).toMatchObject({ value: 120, met: 'no: 20.0 MiB over the target (1.20× it)' });
    expect(row.get('RSS under the 32-connection load')!.measured).toMatch(/^120\.0 MiB \(cached, .*open 90\.0 MiB\)$/);
    expect(row.get('CPU per cached authorized HTTP/1.1 request ÷ nginx proxying with no authorization')).toMatchObject({ value: 2, met: 'no: 1.43× the target' });
    expect(row.get('CPU per cached gRPC unary call ÷ nginx grpc_pass')!.met).toBe('yes, moonshot too');
    expect(row.get('10,000 idle mTLS keep-alive connections, extra RSS')!.met).toBe('yes (moonshot missed by 40.0 MiB)');
    expect(row.get('10,000 idle mTLS keep-alive connections, extra RSS')!.measured).toMatch(/bare Node HTTPS server 700\.0 MiB/);
  });

  it('says "not measured" and why when a case or step did not run, and does not judge another connection count', () => {
    const { nginx: _n, 'nginx+auth_request': _a, 'grpc-nginx': _g, ...withoutNginx } = inputs().cases;
    const rows = byFigure(targetRows(inputs({ cases: withoutNginx, startup: { notMeasured: 'not in --cases' }, idle: { portcullis: idle(50, 50, 4), bare: idle(50, 50, 5) } })));
    expect(rows.get('CPU per cached authorized HTTP/1.1 request ÷ nginx proxying with no authorization')).toMatchObject({ measured: 'not measured: nginx: nginx not found and not installable here', met: '–' });
    expect(rows.get('p99 cached ÷ p99 nginx at the same concurrency')!.measured).toMatch(/^not measured: nginx: /);
    expect(rows.get('start to listening (dist/)')!.measured).toBe('not measured: not in --cases');
    expect(rows.get('10,000 idle mTLS keep-alive connections, extra RSS')!.met).toBe('– (50 of 50 connections open, not the 10,000 the target names)');
  });

  it('keeps every row on one Markdown line, whatever a reason holds', () => {
    const lines = targetTable(targetRows(inputs({ startup: { notMeasured: 'failed: line one\nline | two' } })), 'dist/');
    expect(lines[2]).toBe('| figure | measured | target | moonshot | met? |');
    expect(lines).toHaveLength(4 + 8);
    for (const line of lines.slice(4)) expect(line.split(/(?<!\\)\|/).length, line).toBe(7);
  });
});
