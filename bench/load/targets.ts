// Issue 15's targets table, computed from one run of the bench: each figure the issue names, what
// this run measured, the target and the moonshot, and whether it was met (and by how much it was
// missed: the issue asks for the gap, not only a no). The figures and their bounds live here, in
// one place; run.ts only hands over what it measured. A figure whose case did not run is
// "not measured" with the reason, never a blank.
import type { IdleResult } from './idle-connections.ts';
import type { StartSample } from './startup.ts';

/** The issue's connection-scale figure is for this many connections; another count is reported but not judged. */
export const IDLE_CONNECTIONS_TARGET = 10_000;

export interface TargetRow {
  figure: string;
  measured: string;
  target: string;
  moonshot: string;
  met: string;
  /** The figure as a number, in `unit` (absent when not measured). */
  value?: number;
  unit?: string;
}

export type OrWhyNot<T> = T | { notMeasured: string };

export interface TargetInputs {
  /** Where Portcullis ran from: "dist/" or "src/ (type-stripped)". */
  build: string;
  startup: OrWhyNot<{ portcullis: StartSample[]; bare: StartSample[] }>;
  /** Portcullis holding the idle connections, and a bare Node HTTPS server holding as many. */
  idle: OrWhyNot<{ portcullis: IdleResult; bare: IdleResult }>;
  /** The load cases that ran, by name: their own processes' CPU µs per request, p99 ms, Portcullis's peak RSS MiB. */
  cases: Record<string, { proxyUs: number; p99: number; rssMiB?: number }>;
  /** Why a load case is not in `cases`. */
  whyMissing: (name: string) => string;
  /** HTTP/1.1 connections (HTTP/2: sessions) and HTTP/2 streams per session of the load. */
  connections: number;
  streams: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length === 0 ? NaN : sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const isMissing = <T extends object>(value: OrWhyNot<T>): value is { notMeasured: string } => 'notMeasured' in value;

/** "yes", "yes, moonshot too", or "no: …" with how far over the target the figure is. */
function verdict(value: number, target: number, moonshot: number, format: (n: number) => string): string {
  if (!Number.isFinite(value)) return 'not measured';
  if (value <= moonshot) return 'yes, moonshot too';
  if (value <= target) return `yes (moonshot missed by ${format(value - moonshot)})`;
  // A ratio's gap reads as a factor of the target; an amount's as the amount over it.
  return format === times ? `no: ${(value / target).toFixed(2)}× the target` : `no: ${format(value - target)} over the target (${(value / target).toFixed(2)}× it)`;
}

const mib = (n: number) => `${n.toFixed(1)} MiB`;
const seconds = (n: number) => `${n.toFixed(2)} s`;
const times = (n: number) => `${n.toFixed(2)}×`;

function notMeasured(figure: string, target: string, moonshot: string, why: string): TargetRow {
  return { figure, measured: `not measured: ${why}`, target, moonshot, met: '–' };
}

export function targetRows(input: TargetInputs): TargetRow[] {
  const rows: TargetRow[] = [];
  const build = input.build.split(' ')[0]!;

  // 1 and 3: idle RSS after start and start to listening, each against bare Node in the same run
  // (the issue's order: idle RSS, RSS under load, start-up).
  let startRow: TargetRow;
  {
    const rssFigure = `idle RSS after start (${build}, embedded PDP)`;
    const startFigure = `start to listening (${build})`;
    if (isMissing(input.startup)) {
      rows.push(notMeasured(rssFigure, '≤ 60 MiB', '≤ bare Node', input.startup.notMeasured));
      startRow = notMeasured(startFigure, '≤ 0.4 s', '≤ 0.2 s', input.startup.notMeasured);
    } else {
      const { portcullis, bare } = input.startup;
      const rss = median(portcullis.map((s) => s.idleRssMiB));
      const bareRss = median(bare.map((s) => s.idleRssMiB));
      rows.push({ figure: rssFigure, measured: `${mib(rss)} (median of ${portcullis.length} starts; bare Node HTTPS server ${mib(bareRss)})`, target: '≤ 60 MiB', moonshot: `≤ bare Node (${mib(bareRss)} this run)`, met: verdict(rss, 60, bareRss, mib), value: rss, unit: 'MiB' });
      const listen = median(portcullis.map((s) => s.listenMs)) / 1000;
      const bareListen = median(bare.map((s) => s.listenMs)) / 1000;
      const logs = portcullis.map((s) => s.logMs).filter((ms): ms is number => ms !== undefined);
      const logPart = logs.length ? `; its "serving" log line at ${seconds(median(logs) / 1000)}` : '';
      startRow = { figure: startFigure, measured: `${seconds(listen)} spawn → first mTLS handshake (median of ${portcullis.length}${logPart}; bare Node ${seconds(bareListen)})`, target: '≤ 0.4 s', moonshot: '≤ 0.2 s', met: verdict(listen, 0.4, 0.2, seconds), value: listen, unit: 's' };
    }
  }

  // 2: RSS under the load: the larger of the open and cached cases, named.
  {
    const figure = `RSS under the ${input.connections}-connection load`;
    const measured = ['cached', 'open'].filter((name) => input.cases[name]?.rssMiB !== undefined && Number.isFinite(input.cases[name]!.rssMiB));
    if (measured.length === 0) rows.push(notMeasured(figure, '≤ 100 MiB', '≤ 70 MiB', `${input.whyMissing('cached')}; ${input.whyMissing('open')}`));
    else {
      const [top, ...rest] = measured.sort((a, b) => input.cases[b]!.rssMiB! - input.cases[a]!.rssMiB!);
      const value = input.cases[top!]!.rssMiB!;
      const others = rest.map((name) => `${name} ${mib(input.cases[name]!.rssMiB!)}`).join(', ');
      rows.push({ figure, measured: `${mib(value)} (${top}, the largest after a sample${others ? `; ${others}` : ''})`, target: '≤ 100 MiB', moonshot: '≤ 70 MiB', met: verdict(value, 100, 70, mib), value, unit: 'MiB' });
    }
  }
  rows.push(startRow);

  // 4-6 and 8: ratios of Portcullis's own CPU per request (p99) to nginx doing the job.
  const ratio = (figure: string, ours: string, theirs: string, pick: 'proxyUs' | 'p99', target: number, moonshot: number, unit: string, detail: string) => {
    const a = input.cases[ours];
    const b = input.cases[theirs];
    const fmt = (n: number) => (pick === 'p99' ? n.toFixed(2) : n.toFixed(1));
    if (!a || !b) {
      const why = [!a ? `${ours}: ${input.whyMissing(ours)}` : '', !b ? `${theirs}: ${input.whyMissing(theirs)}` : ''].filter(Boolean).join('; ');
      rows.push(notMeasured(figure, `≤ ${times(target)}`, `≤ ${times(moonshot)}`, why));
      return;
    }
    const value = a[pick] / b[pick];
    rows.push({ figure, measured: `${times(value)} (${ours} ${fmt(a[pick])} ÷ ${theirs} ${fmt(b[pick])} ${unit}, ${detail})`, target: `≤ ${times(target)}`, moonshot: `≤ ${times(moonshot)}`, met: verdict(value, target, moonshot, times), value, unit: '×' });
  };
  const http1 = `${input.connections} connections`;
  ratio('CPU per cached authorized HTTP/1.1 request ÷ nginx proxying with no authorization', 'cached', 'nginx', 'proxyUs', 1.4, 1.0, 'µs/req', http1);
  ratio('the same ÷ nginx + auth_request (per CPU)', 'cached', 'nginx+auth_request', 'proxyUs', 0.6, 0.5, 'µs/req', `${http1}; nginx's CPU includes its auth service`);
  ratio('CPU per cached gRPC unary call ÷ nginx grpc_pass', 'grpc-cached', 'grpc-nginx', 'proxyUs', 1.4, 1.0, 'µs/call', `${input.connections} sessions × ${input.streams} streams`);

  // 7: the connection-scale case.
  {
    const figure = `${IDLE_CONNECTIONS_TARGET.toLocaleString('en-US')} idle mTLS keep-alive connections, extra RSS`;
    if (isMissing(input.idle)) rows.push(notMeasured(figure, '≤ 150 MiB', '≤ 80 MiB', input.idle.notMeasured));
    else {
      const r = input.idle.portcullis;
      const bare = input.idle.bare;
      const trouble = [r.failed ? `${r.failed} failed (${r.firstError ?? '?'})` : '', r.closedEarly ? `${r.closedEarly} closed by the server before the reading` : ''].filter(Boolean).join(', ');
      const measured = `${mib(r.extraMiB)} for ${r.open.toLocaleString('en-US')} open (${r.perConnectionKiB.toFixed(1)} KiB each; ${mib(r.rssBeforeMiB)} → ${mib(r.rssAfterMiB)}; opened in ${seconds(r.openingMs / 1000)}${trouble ? `; ${trouble}` : ''}; bare Node HTTPS server ${mib(bare.extraMiB)}, ${bare.perConnectionKiB.toFixed(1)} KiB each${bare.open < bare.connections ? `, ${bare.open} open` : ''})`;
      const judged = r.connections === IDLE_CONNECTIONS_TARGET && r.open === r.connections;
      const met = judged ? verdict(r.extraMiB, 150, 80, mib) : `– (${r.open} of ${r.connections} connections open, not the ${IDLE_CONNECTIONS_TARGET.toLocaleString('en-US')} the target names)`;
      rows.push({ figure, measured, target: '≤ 150 MiB', moonshot: '≤ 80 MiB', met, value: r.extraMiB, unit: 'MiB' });
    }
  }

  ratio('p99 cached ÷ p99 nginx at the same concurrency', 'cached', 'nginx', 'p99', 1.5, 1.0, 'ms', http1);
  return rows;
}

/** A table cell on one line, whatever a reason (an error message) held. */
const cell = (text: string) => text.replace(/\s+/g, ' ').replaceAll('|', '\\|');

/** The table as Markdown lines, with a heading line saying where it comes from. */
export function targetTable(rows: TargetRow[], build: string): string[] {
  return [
    `Issue 15 targets (Portcullis from ${build}; computed from this run)`,
    '',
    '| figure | measured | target | moonshot | met? |',
    '|---|---|---|---|---|',
    ...rows.map((r) => `| ${[r.figure, r.measured, r.target, r.moonshot, r.met].map(cell).join(' | ')} |`),
  ];
}
