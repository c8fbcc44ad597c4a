// Start-up and idle memory of `portcullis run` (embedded PDP, SVID files, grant and posture
// issuers: the bench's `cached` config): per start, the wall time from spawn to the proxy port
// accepting a connection, the CPU time the process used until then (/proc: steadier than wall
// time on a busy machine), and 3 s later its RSS (anonymous and file-backed apart, /proc) and
// process.memoryUsage(). Several builds or flag sets alternate start by start; medians.
//   npm run build && node bench/start.ts [--runs 5] [--variant "NAME::MAIN.js [node flags…]"]…
// With no --variant: dist/ as is, and dist/ with --max-semi-space-size=2 (the Dockerfile's flag).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DevCa, issuerKeyPair } from '../src/cli/dev-pki.ts';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const DIST = join(HERE, '../dist/cli/main.js');
const { values: flags } = parseArgs({ options: { runs: { type: 'string', default: '5' }, variant: { type: 'string', multiple: true } } });
const variants = (flags.variant ?? [`dist::${DIST}`, `dist --max-semi-space-size=2::${DIST} --max-semi-space-size=2`]).map((spec) => {
  const [name, command = ''] = spec.split('::');
  const [main, ...nodeFlags] = command.split(' ').filter(Boolean);
  if (!name || !main) throw new Error(`--variant: expected "NAME::MAIN.js [node flags…]", got ${JSON.stringify(spec)}`);
  return { name, main, nodeFlags };
});
// Printed once, 2.5 s after start, by a preloaded snippet (no file to ship).
const PROBE = `data:text/javascript,setTimeout(()=>{const m=process.memoryUsage();process.stderr.write('MEMPROBE '+JSON.stringify({heapUsed:m.heapUsed,heapTotal:m.heapTotal})+'\\n')},2500).unref()`;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}
const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MiB = 1024 * 1024;

interface Sample {
  startS: number;
  cpuS: number;
  rss: number;
  anon: number;
  file: number;
  heapUsed: number;
  heapTotal: number;
}

async function once(dir: string, main: string, nodeFlags: string[]): Promise<Sample> {
  const port = await freePort();
  const adminPort = await freePort();
  const config = join(dir, `portcullis-${port}.yaml`);
  writeFileSync(config, readFileSync(join(dir, 'template.yaml'), 'utf8').replace('PORT', String(port)).replace('ADMIN', String(adminPort)));
  const started = performance.now();
  const child = spawn(process.execPath, [...nodeFlags, '--import', PROBE, main, 'run', '--config', config], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, PORTCULLIS_LOG_LEVEL: 'warn' } });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  try {
    while (!(await accepts(port))) {
      if (child.exitCode !== null) throw new Error(`portcullis exited with ${child.exitCode}: ${stderr}`);
      if (performance.now() - started > 20_000) throw new Error(`portcullis did not listen: ${stderr}`);
      await sleep(2);
    }
    const startS = (performance.now() - started) / 1000;
    // /proc/PID/stat fields 14 and 15 (utime, stime) in clock ticks (100 per second on Linux).
    const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    const cpuS = (Number(stat[11]) + Number(stat[12])) / 100;
    await sleep(3000);
    const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
    const kB = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) / 1024;
    const probe = JSON.parse(/MEMPROBE (.*)/.exec(stderr)?.[1] ?? '{}') as { heapUsed?: number; heapTotal?: number };
    return { startS, cpuS, rss: kB('VmRSS'), anon: kB('RssAnon'), file: kB('RssFile'), heapUsed: (probe.heapUsed ?? NaN) / MiB, heapTotal: (probe.heapTotal ?? NaN) / MiB };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-start-'));
  try {
    const ca = await DevCa.create('example.org');
    const server = await ca.svid('/ns/prod/sa/orders-api', { dns: ['localhost'] });
    const issuer = await issuerKeyPair('k1');
    writeFileSync(join(dir, 'svid.pem'), server.certPem);
    writeFileSync(join(dir, 'svid_key.pem'), server.keyPem);
    writeFileSync(join(dir, 'bundle.pem'), ca.bundlePem);
    writeFileSync(join(dir, 'jwks.json'), issuer.jwks);
    writeFileSync(join(dir, 'policy.yaml'), 'tiers:\n  high: { grant: true, posture: high, maxGrantTtl: 15m }\nrules:\n  - { id: support-refunds, effect: allow, subjects: ["spiffe://example.org/ns/prod/sa/support-*"], actions: [orders.refund], resources: ["order:*"], ttl: 30s }\n');
    writeFileSync(
      join(dir, 'template.yaml'),
      `listen: { address: 127.0.0.1, port: PORT }
identity: { certFile: svid.pem, keyFile: svid_key.pem, bundleFile: bundle.pem, trustDomains: [example.org], allow: ["spiffe://example.org/ns/prod/**"] }
upstream: { url: "http://127.0.0.1:9", connections: 64 }
routes:
  - { name: open, match: { methods: [GET], path: /open }, privileged: false }
  - { name: refund, match: { methods: [POST], path: "/orders/{id}/refund" }, action: orders.refund, resource: "order:{id}", sensitivity: high }
pdp: { kind: embedded, policyFile: policy.yaml }
cache: { maxEntries: 100000, allowTtl: 30s, denyTtl: 2s }
grants: { issuers: [{ issuer: "https://jit.example.org", jwksFile: jwks.json }] }
posture: { issuers: [{ issuer: "https://posture.example.org", jwksFile: jwks.json }], maxAge: 15m }
admin: { address: 127.0.0.1, port: ADMIN }
audit: { file: audit.log }
`,
    );
    const loadAtStart = loadavg()[0]!;
    const samples = new Map<string, Sample[]>(variants.map((v) => [v.name, []]));
    for (let run = 0; run < Number(flags.runs); run++) {
      for (const v of variants) samples.get(v.name)!.push(await once(dir, v.main, v.nodeFlags));
    }
    const m = (name: string, key: keyof Sample, digits: number) => median(samples.get(name)!.map((s) => s[key])).toFixed(digits);
    process.stdout.write(`load average (1 min): ${loadAtStart.toFixed(2)} at start, ${loadavg()[0]!.toFixed(2)} at the end; ${flags.runs} starts per variant, alternating; medians\n\n`);
    process.stdout.write('| variant | idle RSS MiB | anonymous | file-backed | heap used MiB | heap total MiB | start to listening s | CPU s to listening |\n|---|---:|---:|---:|---:|---:|---:|---:|\n');
    for (const v of variants) {
      process.stdout.write(`| ${v.name} | ${m(v.name, 'rss', 1)} | ${m(v.name, 'anon', 1)} | ${m(v.name, 'file', 1)} | ${m(v.name, 'heapUsed', 1)} | ${m(v.name, 'heapTotal', 1)} | ${m(v.name, 'startS', 3)} | ${m(v.name, 'cpuS', 2)} |\n`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
