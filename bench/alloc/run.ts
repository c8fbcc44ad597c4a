// `npm run bench:alloc`: heap bytes allocated per request in Portcullis under the load bench's own
// load (bench/run.ts: its servers, load generator and Portcullis configs, unchanged), and RSS.
// bench/run.ts is run as it is, with NODE_OPTIONS importing bench/alloc/hook.ts into every Node
// process it starts; the hook acts only inside `portcullis run`, where it counts the requests
// Node's HTTP server hands out and the heap bytes allocated (V8's GC profiler: no forced GC,
// every GC accounted for), and logs both every 200 ms. Here the counts of each case's proxy are
// taken over its loaded intervals, after the load generator's warm-up.
// Flags: --cases (default open,cached: the HTTP/1.1 cases; the hook counts HTTP/1.1 requests),
// --rounds (default 1), --duration MS (default 3000), --dist, --sample (the hook also samples
// where the bytes are allocated, 2 s under load: bench/results/profiles/alloc-CASE.heapprofile,
// for Chrome DevTools' Memory tab, or summarised with `node bench/alloc/summary.ts FILE`).
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const { values: flags } = parseArgs({
  options: {
    cases: { type: 'string', default: 'open,cached' },
    rounds: { type: 'string', default: '1' },
    duration: { type: 'string', default: '3000' },
    dist: { type: 'boolean', default: false },
    sample: { type: 'boolean', default: false },
  },
});
/** bench/run.ts's warm-up before each measured sample (not --quick). */
const WARMUP_MS = 1500;

interface Line {
  t: number;
  requests: number;
  young: number;
  total: number;
  gcs: number;
  scavenges: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
}

const dir = mkdtempSync(join(tmpdir(), 'portcullis-alloc-'));
const loadAtStart = loadavg()[0]!;
const args = [join(HERE, '../run.ts'), '--cases', flags.cases!, '--rounds', flags.rounds!, '--duration', flags.duration!, '--out', join(dir, 'load.md'), ...(flags.dist ? ['--dist'] : [])];
const hook = pathToFileURL(join(HERE, 'hook.ts')).href;
const child = spawn(process.execPath, args, {
  stdio: ['ignore', 'inherit', 'inherit'],
  env: { ...process.env, PORTCULLIS_ALLOC_DIR: dir, ...(flags.sample ? { PORTCULLIS_ALLOC_SAMPLE: '1' } : {}), NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${hook}`.trim() },
});
const code = await new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? 1)));
if (code !== 0) {
  rmSync(dir, { recursive: true, force: true });
  process.stderr.write(`bench/run.ts exited with ${code}\n`);
  process.exit(code);
}

const rows: string[] = [];
for (const file of readdirSync(dir).filter((f) => f.endsWith('.jsonl'))) {
  const [head, ...rest] = readFileSync(join(dir, file), 'utf8').trim().split('\n');
  const name = (JSON.parse(head!) as { case: string }).case;
  const sampled = join(dir, file.replace('.jsonl', '.heapprofile'));
  if (existsSync(sampled)) {
    mkdirSync(join(HERE, '../results/profiles'), { recursive: true });
    copyFileSync(sampled, join(HERE, `../results/profiles/alloc-${name}.heapprofile`));
  }
  const lines = rest.map((l) => JSON.parse(l) as Line);
  const first = lines.findIndex((l) => l.requests > 0);
  if (first < 1) continue;
  const from = lines[first - 1]!.t + WARMUP_MS;
  let requests = 0;
  let young = 0;
  let total = 0;
  let scavenges = 0;
  for (let i = first; i < lines.length; i++) {
    const [a, b] = [lines[i - 1]!, lines[i]!];
    // Only intervals under load, after the warm-up: idle spells between cases allocate little but would dilute nothing.
    if (a.t < from || b.requests === a.requests) continue;
    requests += b.requests - a.requests;
    young += b.young - a.young;
    total += b.total - a.total;
    scavenges += b.scavenges - a.scavenges;
  }
  const peak = (k: 'rss' | 'heapTotal' | 'heapUsed') => Math.max(...lines.map((l) => l[k])) / 2 ** 20;
  rows.push(`| ${name} | ${requests} | ${(young / requests).toFixed(0)} | ${(total / requests).toFixed(0)} | ${((scavenges / requests) * 1000).toFixed(2)} | ${peak('rss').toFixed(0)} | ${peak('heapTotal').toFixed(0)} | ${peak('heapUsed').toFixed(0)} |`);
}
rmSync(dir, { recursive: true, force: true });
process.stdout.write(
  [
    '',
    `Allocations per request in Portcullis (bench/alloc/run.ts; load average ${loadAtStart.toFixed(2)} at start, ${loadavg()[0]!.toFixed(2)} at the end; Portcullis from ${flags.dist ? 'dist/' : 'src/'})`,
    '',
    '| case | requests counted | heap bytes/request (young gen) | all spaces | scavenges / 1,000 req | peak RSS MiB | peak heap total MiB | peak heap used MiB |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.sort(),
    '',
  ].join('\n'),
);
