// `npm run bench`: the same mTLS load against each case, side by side in one run, alternating
// the cases round by round; medians per case; a table per protocol (HTTP/1.1, HTTP/2, gRPC)
// with ratios to that protocol's direct case and to nginx doing the same job.
// Servers are pinned to CPU 0 and the load generator to CPU 1 (when there are 2+ cores).
// Flags: --quick (a smoke run: tiny load, one round; used by npm test), --rounds N,
// --duration MS, --connections N (HTTP/2: sessions), --streams N (concurrent streams per HTTP/2
// session), --cases a,b,c, --reference (adds minimal Node proxies as
// yardsticks), --profile CASE (V8 CPU profile of that Portcullis), --perf (Portcullis writes
// /tmp/perf-PID.map for `perf record`), --node-options "…" (Portcullis's V8 flags; default the
// Dockerfile's ENV NODE_OPTIONS, as the image runs it). Each sample reports the CPU time per request of the
// case's own processes and of the service, read from /proc: unlike req/s, it does not depend
// on how the scheduler shares CPU 0.
// The same run also measures start-up (--starts N: Portcullis and a bare Node HTTPS server
// started alternately), idle connections at scale (--idle-connections N, default 10,000) and
// ends with issue 15's targets table computed from all of it (bench/load/targets.ts); the
// --cases names of those two steps are `startup` and `idle-connections`.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { generateKeyPairSync } from 'node:crypto';
import { exportJWK } from 'jose';
import { DevCa } from '../src/cli/dev-pki.ts';
import { mintGrant, mintPosture } from '../src/cli/mint.ts';
import { nginxConfig, nginxVersion, findNginx } from './load/nginx.ts';
import { probe } from './load/probe.ts';
import { MCP_ANSWER_TEXT, MCP_BODY, MCP_HEADERS, MCP_PATH, probeMcp } from './load/mcp-call.ts';
import { rssMiB } from './load/rss.ts';
import { BARE_HTTPS_SERVER, timeStart, type StartSample } from './load/startup.ts';
import { fileLimits, reachableLimit, withFileLimit } from './load/file-limit.ts';
import type { IdleResult } from './load/idle-connections.ts';
import { targetRows, targetTable, type TargetInputs } from './load/targets.ts';

const HERE = fileURLToPath(new URL('.', import.meta.url));

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    connections: { type: 'string' },
    streams: { type: 'string' },
    cases: { type: 'string' },
    out: { type: 'string' },
    profile: { type: 'string' },
    dist: { type: 'boolean', default: false },
    reference: { type: 'boolean', default: false },
    perf: { type: 'boolean', default: false },
    'node-options': { type: 'string' },
    starts: { type: 'string' },
    'idle-connections': { type: 'string' },
  },
});
// `--dist` (what `npm run bench` uses, after building) measures the compiled JavaScript, as
// production runs it; without it, the TypeScript source (Node strips types at load, which costs
// memory but not per-request time).
const MAIN = flags.dist ? join(HERE, '../dist/cli/main.js') : join(HERE, '../src/cli/main.ts');
const PROFILE_DIR = join(HERE, 'results', 'profiles');
const profiled: ChildProcess[] = [];
const quick = flags.quick!;
const ROUNDS = Number(flags.rounds ?? (quick ? 1 : 3));
const DURATION_MS = Number(flags.duration ?? (quick ? 300 : 5000));
const CONNECTIONS = Number(flags.connections ?? (quick ? 2 : 32));
const STREAMS = Number(flags.streams ?? (quick ? 2 : 4));
const WARMUP_MS = quick ? 200 : 1500;
/** Start-up: how many starts of Portcullis, alternating with as many of bare Node. */
const STARTS = Number(flags.starts ?? (quick ? 1 : 5));
/** The connection-scale case: how many idle mTLS keep-alive connections. */
const IDLE_CONNECTIONS = Number(flags['idle-connections'] ?? (quick ? 50 : 10_000));
const pin = cpus().length >= 2 && spawnSync('taskset', ['-c', '0', 'true']).status === 0;

const children: ChildProcess[] = [];
/** Temporary folders (keys, configs, audit logs): removed on exit. */
const scratch: string[] = [];
function cleanup(): void {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  for (const dir of scratch.splice(0)) rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

function run(cpu: number, command: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const [file, argv] = pin ? ['taskset', ['-c', String(cpu), command, ...args]] : [command, args];
  const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  children.push(child);
  // A helper that dies mid-run fails every later sample of its cases: say which, and why.
  let stderrTail = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderrTail = (stderrTail + chunk.toString()).slice(-1500)));
  child.on('exit', (code) => {
    if (code !== null && code !== 0) process.stderr.write(`bench: ${[command, ...args].join(' ').slice(0, 160)} exited with ${code}: ${stderrTail}\n`);
  });
  return child;
}

function firstJsonLine(child: ChildProcess, what: string, stream: 'stdout' | 'stderr' = 'stdout', test: (line: string) => boolean = () => true, timeoutMs = 20_000): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let text = '';
    let errText = '';
    const timer = setTimeout(() => reject(new Error(`${what} did not start: ${errText.slice(-2000)}`)), timeoutMs);
    child.stderr!.on('data', (chunk: Buffer) => (errText += chunk.toString()));
    child[stream]!.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      for (const line of text.split('\n')) {
        if (!line.startsWith('{') || !test(line)) continue;
        clearTimeout(timer);
        resolve(JSON.parse(line) as Record<string, unknown>);
        return;
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}: ${errText.slice(-2000)}`));
    });
  });
}

async function startServer(options: Record<string, unknown>): Promise<{ port: number; pid: number }> {
  const child = run(0, process.execPath, [join(HERE, 'load/servers.ts'), JSON.stringify(options)]);
  return { port: (await firstJsonLine(child, `server ${String(options.kind)}`)).port as number, pid: child.pid! };
}

/** `openFiles`: the open-file limit it needs, when more than the shell's default (the idle-connections case). */
/**
 * Portcullis runs with the V8 flags its image sets (the Dockerfile's `ENV NODE_OPTIONS`), so the
 * memory figures are the shipped sidecar's; `--node-options ""` runs it with Node's defaults.
 * Added to any NODE_OPTIONS the bench itself was given (bench/alloc passes its hook that way).
 */
const IMAGE_NODE_OPTIONS = flags['node-options'] ?? /^ENV NODE_OPTIONS="([^"]*)"$/m.exec(readFileSync(join(HERE, '../Dockerfile'), 'utf8'))?.[1] ?? '';
function portcullisEnv(logLevel: string): NodeJS.ProcessEnv {
  return { PORTCULLIS_LOG_LEVEL: logLevel, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${IMAGE_NODE_OPTIONS}`.trim() };
}

function startPortcullis(configFile: string, profile: boolean, openFiles?: number): ChildProcess {
  const cpuProf = profile ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : flags.perf ? ['--perf-basic-prof'] : [];
  const args = [...cpuProf, MAIN, 'run', '--config', configFile];
  const child = run(0, ...(openFiles ? withFileLimit(openFiles, process.execPath, args) : ([process.execPath, args] as const)), portcullisEnv('warn'));
  if (profile) profiled.push(child);
  child.stdout!.resume();
  child.stderr!.on('data', (chunk: Buffer) => process.stderr.write(chunk));
  child.on('exit', (code) => {
    if (code !== null && code !== 0) process.stderr.write(`portcullis (${configFile}) exited with ${code}\n`);
  });
  return child;
}

interface Sample {
  requests: number;
  /** CPU seconds each watched process used while the sample was recorded. */
  cpu: Record<string, number>;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
  /** The load generator's own CPU, % of one core (measure.ts). */
  loadgenCpu: number;
}

type Files = { ca: string; cert: string; key: string };
/** Each protocol gets its own table, its ratios taken to its own direct and nginx cases. */
type Group = 'HTTP/1.1' | 'HTTP/2' | 'gRPC' | 'MCP';
const GROUPS: { name: Group; direct: string; nginx: string }[] = [
  { name: 'HTTP/1.1', direct: 'direct', nginx: 'nginx' },
  { name: 'HTTP/2', direct: 'h2-direct', nginx: 'h2-nginx' },
  { name: 'gRPC', direct: 'grpc-direct', nginx: 'grpc-nginx' },
  // Its own table: the SDK server costs many times the HTTP/1.1 upstream per request, so MCP
  // ratios mean something only against the same service (bench/README.md "MCP").
  { name: 'MCP', direct: 'mcp-direct', nginx: 'mcp-nginx' },
];
/**
 * How a case is loaded: HTTP/1.1 (loadgen.ts; `body` sent with each request, `expect` the text an
 * answer must hold to count) or HTTP/2 (h2-loadgen.ts; `tls: false` is h2c, `grpc` gRPC unary calls).
 */
type Load = { kind: 'http1'; body?: string; expect?: string } | { kind: 'h2'; tls: boolean; grpc: boolean };

async function load(port: number, path: string, headers: Record<string, string>, method: string, files: Files, watchPids: number[], how: Load = { kind: 'http1' }): Promise<Sample> {
  const window = { durationMs: DURATION_MS, warmupMs: WARMUP_MS, watchPids };
  const [script, options] =
    how.kind === 'http1'
      ? ['load/loadgen.ts', { port, path, headers, method, body: how.body, expect: how.expect, ...files, connections: CONNECTIONS, ...window }]
      : ['load/h2-loadgen.ts', { port, path, headers, method, tls: how.tls ? files : undefined, grpc: how.grpc, sessions: CONNECTIONS, streams: STREAMS, ...window }];
  const child = run(1, process.execPath, [join(HERE, script), JSON.stringify(options)]);
  return (await firstJsonLine(child, 'load generator', 'stdout', () => true, DURATION_MS + WARMUP_MS + 30_000)) as unknown as Sample;
}

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs = 20_000): Promise<void> {
  const { connect } = await import('node:net');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function fixed(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : '–';
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

async function main(): Promise<void> {
  // Other work on the machine competes for both CPUs: the table says how busy it was.
  const loadAtStart = loadavg()[0]!;
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-'));
  scratch.push(dir);
  const write = (name: string, text: string) => {
    const file = join(dir, name);
    writeFileSync(file, text);
    return file;
  };
  const ca = await DevCa.create('example.org');
  const serverSvid = await ca.svid('/ns/prod/sa/orders-api', { dns: ['localhost'] });
  const client = await ca.svid('/ns/prod/sa/support-bot');
  const files = { ca: write('bundle.pem', ca.bundlePem), cert: write('client.pem', client.certPem), key: write('client_key.pem', client.keyPem) };
  write('svid.pem', serverSvid.certPem);
  write('svid_key.pem', serverSvid.keyPem);
  const issuerKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  write('jwks.json', JSON.stringify({ keys: [{ ...(await exportJWK(issuerKey.publicKey)), kid: 'k1', alg: 'ES256' }] }));
  write('policy.yaml', 'tiers:\n  high: { grant: true, posture: high, maxGrantTtl: 15m }\nrules:\n  - { id: support-refunds, effect: allow, subjects: ["spiffe://example.org/ns/prod/sa/support-*"], actions: [orders.refund], resources: ["order:*"], ttl: 30s }\n');
  const grant = await mintGrant({ key: issuerKey.privateKey, kid: 'k1', iss: 'https://jit.example.org', sub: 'spiffe://example.org/ns/prod/sa/support-bot', aud: 'spiffe://example.org/ns/prod/sa/orders-api', scope: 'orders.refund', ttl: '14m', resources: ['order:*'] });
  const posture = await mintPosture({ key: issuerKey.privateKey, kid: 'k1', iss: 'https://posture.example.org', sub: 'spiffe://example.org/ns/prod/sa/support-bot', trust: 'high', ttl: '14m' });
  const tokenHeaders = { 'x-jit-grant': grant, 'x-device-posture': posture };
  // The HTTP/2 and gRPC cases read an order and call a gRPC method: their own policy and grant,
  // so the HTTP/1.1 cases keep exactly the policy and tokens their published figures had.
  write('policy-h2.yaml', 'tiers:\n  high: { grant: true, posture: high, maxGrantTtl: 15m }\nrules:\n  - { id: support-reads, effect: allow, subjects: ["spiffe://example.org/ns/prod/sa/support-*"], actions: [orders.read, orders.grpc], resources: ["order:*", "grpc:*"], ttl: 30s }\n');
  const h2Grant = await mintGrant({ key: issuerKey.privateKey, kid: 'k1', iss: 'https://jit.example.org', sub: 'spiffe://example.org/ns/prod/sa/support-bot', aud: 'spiffe://example.org/ns/prod/sa/orders-api', scope: 'orders.read orders.grpc', ttl: '14m', resources: ['order:*', 'grpc:*'] });
  const h2TokenHeaders = { 'x-jit-grant': h2Grant, 'x-device-posture': posture };
  // The MCP cases: an agent allowed one tool, `lookup_order` (action mcp.tools.call on mcp:lookup_order).
  write('policy-mcp.yaml', 'tiers:\n  high: { grant: true, posture: high, maxGrantTtl: 15m }\nrules:\n  - { id: agent-lookups, effect: allow, subjects: ["spiffe://example.org/ns/prod/sa/support-*"], actions: [mcp.tools.call], resources: ["mcp:lookup_order"], ttl: 30s }\n');
  const mcpGrant = await mintGrant({ key: issuerKey.privateKey, kid: 'k1', iss: 'https://jit.example.org', sub: 'spiffe://example.org/ns/prod/sa/support-bot', aud: 'spiffe://example.org/ns/prod/sa/orders-api', scope: 'mcp.tools.call', ttl: '14m', resources: ['mcp:lookup_order'] });
  const mcpTokenHeaders = { 'x-jit-grant': mcpGrant, 'x-device-posture': posture };

  const { port: upstreamPort, pid: upstreamPid } = await startServer({ kind: 'upstream', port: 0 });
  const directServer = await startServer({ kind: 'upstream-tls', port: 0, cert: join(dir, 'svid.pem'), key: join(dir, 'svid_key.pem'), ca: files.ca });
  const authzen = await startServer({ kind: 'authzen', port: 0 });
  const authzenPort = authzen.port;
  // The HTTP/2 services start only when a case needs them.
  const lazily = <T>(start: () => Promise<T>) => {
    let started: Promise<T> | undefined;
    return () => (started ??= start());
  };
  const h2Service = (options: Record<string, unknown>) => {
    const child = run(0, process.execPath, [join(HERE, 'load/h2-services.ts'), JSON.stringify(options)]);
    return firstJsonLine(child, `service ${String(options.kind)}`).then((line) => ({ port: line.port as number, tlsPort: line.tlsPort as number | undefined, pid: child.pid! }));
  };
  const tlsFiles = { cert: join(dir, 'svid.pem'), key: join(dir, 'svid_key.pem'), ca: files.ca };
  const h2DirectServer = lazily(() => h2Service({ kind: 'h2-tls', port: 0, ...tlsFiles }));
  const grpcServer = lazily(() => h2Service({ kind: 'grpc', port: 0, ...tlsFiles }));
  const mcpServer = lazily(() => {
    const child = run(0, process.execPath, [join(HERE, 'load/mcp-service.ts'), JSON.stringify({ port: 0, ...tlsFiles })]);
    return firstJsonLine(child, 'MCP service').then((line) => ({ port: line.port as number, tlsPort: line.tlsPort as number, pid: child.pid! }));
  });

  /** `routes`: YAML route lines replacing the HTTP/1.1 cases' two; `upstream`: another service than the HTTP/1.1 one. */
  type Extra = { maxEntries?: number; pdp?: string; routes?: string; upstream?: { port: number; protocol: 'http1' | 'h2c'; connections?: number }; limits?: string };
  const HTTP1_ROUTES = `  - { name: open, match: { methods: [GET], path: /open }, privileged: false }
  - { name: refund, match: { methods: [POST], path: "/orders/{id}/refund" }, action: orders.refund, resource: "order:{id}", sensitivity: high }`;
  const configFor = async (name: string, extra: Extra) => {
    const port = await freePort();
    const adminPort = await freePort();
    const file = write(`${name}.yaml`, `listen: { address: 127.0.0.1, port: ${port} }
identity: { certFile: svid.pem, keyFile: svid_key.pem, bundleFile: bundle.pem, trustDomains: [example.org], allow: ["spiffe://example.org/ns/prod/**"] }
upstream: { url: "http://127.0.0.1:${extra.upstream?.port ?? upstreamPort}", connections: ${extra.upstream?.connections ?? 64}${extra.upstream ? `, protocol: ${extra.upstream.protocol}` : ''} }
routes:
${extra.routes ?? HTTP1_ROUTES}
pdp: ${extra.pdp ?? '{ kind: embedded, policyFile: policy.yaml }'}
cache: { maxEntries: ${extra.maxEntries ?? 100000}, allowTtl: 30s, denyTtl: 2s }
grants: { issuers: [{ issuer: "https://jit.example.org", jwksFile: jwks.json }] }
posture: { issuers: [{ issuer: "https://posture.example.org", jwksFile: jwks.json }], maxAge: 15m }
admin: { address: 127.0.0.1, port: ${adminPort} }
audit: { file: ${name}-audit.log }
${extra.limits ? `limits: ${extra.limits}\n` : ''}`);
    return { file, port };
  };
  const portcullisConfig = async (name: string, extra: Extra) => {
    const { file, port } = await configFor(name, extra);
    const child = startPortcullis(file, flags.profile === name);
    await waitForPort(port);
    return { port, pid: child.pid! };
  };

  interface Case {
    name: string;
    port: number;
    path: string;
    method: string;
    headers: Record<string, string>;
    /** The processes that do the case's proxying and authorization (their CPU is reported per request). */
    pids: number[];
    /** Portcullis's own process, whose RSS is reported. */
    portcullisPid?: number;
    /** The table it is reported in: ratios are to that table's direct and nginx cases. */
    group?: Group;
    how?: Load;
    /** The service behind the case (its CPU is reported apart); undefined for a direct case. Default: the HTTP/1.1 upstream. */
    service?: number;
  }
  const wanted = flags.cases ? new Set(flags.cases.split(',')) : undefined;
  const cases: Case[] = [];
  const notes: string[] = [];
  const add = async (name: string, make: () => Promise<Omit<Case, 'name'> | undefined>) => {
    if (wanted && !wanted.has(name)) return;
    const made = await make();
    if (made) cases.push({ name, group: 'HTTP/1.1', how: { kind: 'http1' }, service: upstreamPid, ...made });
  };
  const portcullis = async (name: string, extra: Extra, path: string, method: string, headers: Record<string, string>, alsoWatch: number[] = []) => {
    const { port, pid } = await portcullisConfig(name, extra);
    return { port, path, method, headers, pids: [pid, ...alsoWatch], portcullisPid: pid };
  };
  await add('direct', async () => ({ port: directServer.port, path: '/open', method: 'GET', headers: {}, pids: [directServer.pid], service: undefined }));
  await add('open', () => portcullis('open', {}, '/open', 'GET', {}));
  await add('cached', () => portcullis('cached', {}, '/orders/42/refund', 'POST', tokenHeaders));
  await add('uncached', () => portcullis('uncached', { maxEntries: 0 }, '/orders/42/refund', 'POST', tokenHeaders));
  await add('remote', () => portcullis('remote', { pdp: `{ kind: authzen, url: "http://127.0.0.1:${authzenPort}", timeout: 250ms }` }, '/orders/42/refund', 'POST', tokenHeaders, [authzen.pid]));
  // Yardsticks (--reference, or named in --cases): minimal Node proxies with no authorization at all.
  for (const kind of ['node-undici', 'node-raw-client', 'node-raw']) {
    if (!flags.reference && !wanted?.has(kind)) continue;
    await add(kind, async () => {
      const child = run(0, process.execPath, [join(HERE, 'load/reference-proxies.ts'), JSON.stringify({ kind, port: 0, upstreamPort, cert: join(dir, 'svid.pem'), key: join(dir, 'svid_key.pem'), ca: files.ca })]);
      const { port } = (await firstJsonLine(child, kind)) as { port: number };
      return { port, path: '/open', method: 'GET', headers: {}, pids: [child.pid!] };
    });
  }
  // HTTP/2 (ALPN h2, client certificate) through Portcullis to the HTTP/1.1 upstream, against the
  // service terminating the same mTLS over HTTP/2 itself (bench/README.md says why that yardstick).
  const h2 = { group: 'HTTP/2', how: { kind: 'h2', tls: true, grpc: false } } as const;
  const H2_ROUTES = `  - { name: open, match: { methods: [GET], path: /open }, privileged: false }
  - { name: order, match: { methods: [GET], path: "/orders/{id}" }, action: orders.read, resource: "order:{id}", sensitivity: high }`;
  // Enough connections to the service for every stream in flight, for Portcullis and nginx alike.
  const H2_UPSTREAM_CONNECTIONS = Math.max(64, CONNECTIONS * STREAMS);
  const h2Extra: Extra = { routes: H2_ROUTES, pdp: '{ kind: embedded, policyFile: policy-h2.yaml }', upstream: { port: upstreamPort, protocol: 'http1', connections: H2_UPSTREAM_CONNECTIONS } };
  await add('h2-direct', async () => {
    const server = await h2DirectServer();
    return { ...h2, port: server.port, path: '/open', method: 'GET', headers: {}, pids: [server.pid], service: undefined };
  });
  await add('h2-open', async () => ({ ...h2, ...(await portcullis('h2-open', h2Extra, '/open', 'GET', {})) }));
  await add('h2-cached', async () => ({ ...h2, ...(await portcullis('h2-cached', h2Extra, '/orders/42', 'GET', h2TokenHeaders)) }));
  // gRPC unary calls from the same HTTP/2 load generator: to the h2c service itself (and the same
  // service terminating mTLS), and through Portcullis (upstream.protocol: h2c) and nginx (grpc_pass).
  const GRPC_PATH = '/bench.v1.Orders/Refund';
  const grpcCase = (tls: boolean) => ({ group: 'gRPC', how: { kind: 'h2', tls, grpc: true }, path: GRPC_PATH, method: 'POST' }) as const;
  await add('grpc-direct', async () => {
    const server = await grpcServer();
    return { ...grpcCase(false), port: server.port, headers: {}, pids: [server.pid], service: undefined };
  });
  await add('grpc-direct-tls', async () => {
    const server = await grpcServer();
    return { ...grpcCase(true), port: server.tlsPort!, headers: {}, pids: [server.pid], service: undefined };
  });
  await add('grpc-cached', async () => {
    const server = await grpcServer();
    const routes = '  - { name: orders-grpc, match: { methods: [POST], path: "/bench.v1.Orders/**" }, action: orders.grpc, resource: "grpc:{**}", sensitivity: high }';
    const made = await portcullis('grpc-cached', { routes, pdp: h2Extra.pdp, upstream: { port: server.port, protocol: 'h2c' } }, GRPC_PATH, 'POST', h2TokenHeaders);
    // Until the proxy forwards over h2c, a gRPC call through it cannot succeed: say so, never measure it.
    const failed = await probe({ port: made.port, path: GRPC_PATH, method: 'POST', headers: h2TokenHeaders, h2: { tls: true, grpc: true }, files });
    if (failed !== undefined) {
      notes.push(`grpc-cached skipped: h2c upstream not available (a probe call through Portcullis got ${failed})`);
      return undefined;
    }
    return { ...grpcCase(true), ...made, service: server.pid };
  });
  // MCP over HTTP/1.1 (bench/README.md "MCP"): every request one `tools/call` of the SDK server's
  // read tool, a POST with a JSON body; it counts only if answered with the tool's result.
  const mcp = { group: 'MCP', how: { kind: 'http1', body: MCP_BODY, expect: MCP_ANSWER_TEXT }, path: MCP_PATH, method: 'POST' } as const;
  await add('mcp-direct', async () => {
    const server = await mcpServer();
    return { ...mcp, port: server.tlsPort, headers: { ...MCP_HEADERS }, pids: [server.pid], service: undefined };
  });
  await add('mcp-open', async () => {
    const server = await mcpServer();
    const routes = `  - { name: mcp-open, match: { methods: [POST], path: ${MCP_PATH} }, privileged: false }`;
    return { ...mcp, ...(await portcullis('mcp-open', { routes, upstream: { port: server.port, protocol: 'http1' } }, MCP_PATH, 'POST', { ...MCP_HEADERS })), service: server.pid };
  });
  await add('mcp-cached', async () => {
    const server = await mcpServer();
    const routes = `  - { name: mcp, match: { methods: [POST], path: ${MCP_PATH} }, jsonrpc: true, action: "mcp.{rpc.method}", resource: "mcp:{rpc.name}", sensitivity: high }`;
    return { ...mcp, ...(await portcullis('mcp-cached', { routes, pdp: '{ kind: embedded, policyFile: policy-mcp.yaml }', upstream: { port: server.port, protocol: 'http1' } }, MCP_PATH, 'POST', { ...MCP_HEADERS, ...mcpTokenHeaders })), service: server.pid };
  });
  let nginx = findNginx();
  const NGINX_CASES = ['nginx', 'nginx+auth_request', 'h2-nginx', 'grpc-nginx', 'mcp-nginx'];
  const wantsNginx = !wanted || NGINX_CASES.some((name) => wanted.has(name));
  if (!nginx && wantsNginx && !quick && process.getuid?.() === 0) {
    process.stderr.write('nginx not found: installing it from Debian (apt-get install nginx)…\n');
    spawnSync('sh', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx'], { stdio: 'ignore', timeout: 180_000 });
    // The package starts a system nginx on port 80; the bench runs its own.
    spawnSync('sh', ['-c', 'service nginx stop || true'], { stdio: 'ignore', timeout: 10_000 });
    nginx = findNginx();
    if (nginx) notes.push('nginx was installed for this run (Debian package)');
  }
  if (!nginx && wantsNginx) notes.push('nginx not found and not installable here: the nginx cases were skipped');
  else {
    const version = nginxVersion(nginx!);
    const startNginx = async (name: string, options: { auth?: boolean; http2?: boolean; grpcPort?: number; upstreamPort?: number }) => {
      const port = await freePort();
      const authService = options.auth ? await startServer({ kind: 'auth', port: 0 }) : undefined;
      const prefix = join(dir, `${name.replace('+', '-')}-nginx`);
      mkdirSync(prefix, { recursive: true });
      const keepalive = options.http2 || options.grpcPort ? H2_UPSTREAM_CONNECTIONS : undefined;
      const conf = write(`${name.replace('+', '-')}.conf`, nginxConfig({ prefix, port, upstreamPort: options.upstreamPort ?? upstreamPort, authPort: authService?.port, http2: options.http2, grpcPort: options.grpcPort, version, keepalive, ...tlsFiles }));
      const child = run(0, nginx!, ['-p', prefix, '-c', conf, '-e', join(prefix, 'error.log')]);
      child.stderr!.resume();
      await waitForPort(port);
      // nginx's master forks the worker that does the work: the loadgen counts the master's children too.
      return { port, pids: [child.pid!, ...(authService ? [authService.pid] : [])] };
    };
    for (const [name, auth] of [['nginx', false], ['nginx+auth_request', true]] as const) {
      await add(name, async () => ({ ...(await startNginx(name, { auth })), path: '/open', method: 'GET', headers: {} }));
    }
    await add('h2-nginx', async () => ({ ...h2, ...(await startNginx('h2-nginx', { http2: true })), path: '/open', method: 'GET', headers: {} }));
    await add('grpc-nginx', async () => {
      const server = await grpcServer();
      return { ...grpcCase(true), ...(await startNginx('grpc-nginx', { grpcPort: server.port })), headers: {}, service: server.pid };
    });
    await add('mcp-nginx', async () => {
      const server = await mcpServer();
      return { ...mcp, ...(await startNginx('mcp-nginx', { upstreamPort: server.port })), headers: { ...MCP_HEADERS }, service: server.pid };
    });
  }

  /** Why a load case has no figures in this run (for the targets table). */
  const whyMissing = (name: string): string => {
    if (wanted && !wanted.has(name)) return 'not in --cases';
    const note = notes.find((n) => n.startsWith(`${name} `) || (NGINX_CASES.includes(name) && n.startsWith('nginx not found')));
    return note ?? 'the case did not run';
  };

  /**
   * Start to listening and idle RSS: Portcullis (embedded PDP, the HTTP/1.1 cases' config) and a
   * bare Node HTTPS server, STARTS times each, alternating which goes first, on CPU 0 like every
   * server; each a fresh process on a fresh port, timed from spawn to the first mTLS handshake.
   */
  async function measureStartup(): Promise<TargetInputs['startup']> {
    if (wanted && !wanted.has('startup')) return { notMeasured: 'not in --cases' };
    const settleMs = quick ? 500 : 2000;
    const portcullisStarts: StartSample[] = [];
    const bareStarts: StartSample[] = [];
    const portcullisOnce = async (i: number) => {
      const { file, port } = await configFor(`startup-${i}`, {});
      portcullisStarts.push(await timeStart(() => run(0, process.execPath, [MAIN, 'run', '--config', file], portcullisEnv('info')), { port, secureContext: clientContext, settleMs, logLine: 'portcullis is serving' }));
    };
    const bareOnce = async () => {
      const port = await freePort();
      const env = { BARE_PORT: String(port), BARE_CERT: tlsFiles.cert, BARE_KEY: tlsFiles.key, BARE_CA: tlsFiles.ca };
      bareStarts.push(await timeStart(() => run(0, process.execPath, ['-e', BARE_HTTPS_SERVER], env), { port, secureContext: clientContext, settleMs }));
    };
    for (let i = 0; i < STARTS; i++) {
      if (i % 2 === 0) {
        await portcullisOnce(i);
        await bareOnce();
      } else {
        await bareOnce();
        await portcullisOnce(i);
      }
    }
    if (!quick) process.stderr.write(`startup: Portcullis ${portcullisStarts.map((s) => fixed(s.listenMs, 0)).join(', ')} ms, ${portcullisStarts.map((s) => fixed(s.idleRssMiB, 1)).join(', ')} MiB; bare Node ${bareStarts.map((s) => fixed(s.listenMs, 0)).join(', ')} ms, ${bareStarts.map((s) => fixed(s.idleRssMiB, 1)).join(', ')} MiB\n`);
    return { portcullis: portcullisStarts, bare: bareStarts };
  }

  /**
   * The connection-scale case: a Portcullis of its own (the HTTP/1.1 cases' config), and
   * bench/load/idle-connections.ts on CPU 1 holding IDLE_CONNECTIONS mTLS keep-alive connections
   * to it, one request each (GET /open); then the same against a bare Node HTTPS server, the
   * yardstick for what Node itself holds per TLS connection. Both ends get the open-file limit
   * that takes (the hard limit caps it for non-root: then fewer connections, and a note says so).
   */
  async function measureIdleConnections(): Promise<TargetInputs['idle']> {
    if (wanted && !wanted.has('idle-connections')) return { notMeasured: 'not in --cases' };
    const SPARE_FILES = 256; // listeners, the upstream pool, logs, the runtime's own
    const limits = fileLimits();
    const openFiles = reachableLimit(IDLE_CONNECTIONS + SPARE_FILES, limits);
    const connections = Math.min(IDLE_CONNECTIONS, openFiles - SPARE_FILES);
    if (connections <= 0) return { notMeasured: `the hard open-file limit (${limits.hard}) leaves no room for connections` };
    if (connections < IDLE_CONNECTIONS) notes.push(`idle-connections: ${connections} connections, not ${IDLE_CONNECTIONS}: the hard open-file limit is ${limits.hard}`);
    // Opening 10,000 mTLS connections takes from 20 s to minutes on a busy 2-core machine: both
    // servers keep idle connections 10 minutes here (Portcullis's limits.idleTimeout, Node's
    // keepAliveTimeout), so none is closed before the reading. How long an idle connection may
    // live is policy; what it costs while it lives is the figure.
    const IDLE_KEEP = '10m';
    const IDLE_KEEP_MS = 600_000;
    const hold = async (what: string, port: number, server: ChildProcess): Promise<IdleResult> => {
      try {
        await waitForPort(port);
        const options = { port, pid: server.pid, path: '/open', ...files, connections, concurrency: 32, ratePerSecond: 1000, warmupRequests: quick ? 40 : 2000, settleMs: quick ? 500 : 2000, timeoutMs: 400_000 };
        const generator = run(1, ...withFileLimit(openFiles, process.execPath, [join(HERE, 'load/idle-connections.ts'), JSON.stringify(options)]));
        const result = (await firstJsonLine(generator, 'idle-connections generator', 'stdout', () => true, 450_000)) as unknown as IdleResult;
        if (!quick) process.stderr.write(`idle-connections, ${what}: ${result.open} open, ${fixed(result.extraMiB, 1)} MiB extra (${fixed(result.perConnectionKiB, 1)} KiB each), opened in ${fixed(result.openingMs, 0)} ms (CPU ${fixed(result.serverCpuMsPerConnection, 2)} ms per connection); generator ${fixed(result.generatorRssMiB, 0)} MiB\n`);
        return result;
      } finally {
        // Its figures are read: no need to watch it drain its connections.
        server.kill('SIGKILL');
      }
    };
    const { file, port } = await configFor('idle-connections', { limits: `{ idleTimeout: ${IDLE_KEEP} }` });
    const portcullisResult = await hold('Portcullis', port, startPortcullis(file, false, openFiles));
    const barePort = await freePort();
    const bareEnv = { BARE_PORT: String(barePort), BARE_CERT: tlsFiles.cert, BARE_KEY: tlsFiles.key, BARE_CA: tlsFiles.ca, BARE_KEEPALIVE_MS: String(IDLE_KEEP_MS) };
    const bareServer = run(0, ...withFileLimit(openFiles, process.execPath, ['-e', BARE_HTTPS_SERVER]), bareEnv);
    bareServer.stdout!.resume();
    bareServer.stderr!.resume();
    return { portcullis: portcullisResult, bare: await hold('bare Node', barePort, bareServer) };
  }

  // Every case answers one request as it should before it is measured, or the bench stops here.
  for (const c of cases) {
    // An MCP case must answer the tool's result (a JSON-RPC error also comes with 200).
    const failed = c.group === 'MCP' ? await probeMcp({ port: c.port, headers: c.headers, files }) : await probe({ port: c.port, path: c.path, method: c.method, headers: c.headers, h2: c.how?.kind === 'h2' ? c.how : undefined, files });
    if (failed !== undefined) throw new Error(`case ${c.name} does not answer as it should: ${failed}`);
  }
  // Issue 15's start-up and connection-scale figures, before the load (bench/load/targets.ts).
  const clientContext = createSecureContext({ ca: readFileSync(files.ca), cert: readFileSync(files.cert), key: readFileSync(files.key) });
  // A step that fails is a figure not measured, with why; the load cases still run.
  const orWhyNot = <T>(step: Promise<T>) => step.catch((error: unknown) => ({ notMeasured: `failed: ${(error as Error).message.slice(0, 300)}` }));
  const startup = await orWhyNot(measureStartup());
  const idle = await orWhyNot(measureIdleConnections());
  const samples = new Map<string, Sample[]>(cases.map((c) => [c.name, []]));
  const peakRss = new Map<string, number>();
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate the order each round so no case always runs first (or hottest).
    const order = round % 2 === 0 ? cases : [...cases].reverse();
    for (const c of order) {
      const sample = await load(c.port, c.path, c.headers, c.method, files, c.service === undefined ? c.pids : [...c.pids, c.service], c.how);
      samples.get(c.name)!.push(sample);
      // The proxy's RSS right after its load: the largest seen per case is reported.
      peakRss.set(c.name, Math.max(peakRss.get(c.name) ?? 0, rssMiB(c.portcullisPid)));
      if (!quick) process.stderr.write(`round ${round + 1}/${ROUNDS} ${c.name}: ${fixed(sample.rps, 0)} req/s, p99 ${fixed(sample.p99 ?? NaN, 2)} ms${sample.non2xx || sample.errors ? `, ${sample.non2xx} non-2xx, ${sample.errors} errors` : ''}\n`);
    }
  }
  const summary = cases.map((c) => {
    const list = samples.get(c.name)!;
    // CPU per request: the case's own processes (the proxy, and its auth service if any), and the service behind it.
    const perRequest = (s: Sample, pids: number[]) => (pids.reduce((sum, pid) => sum + (s.cpu[pid] ?? 0), 0) / s.requests) * 1e6;
    const proxyUs = median(list.map((s) => perRequest(s, c.pids)));
    const upstreamUs = c.service === undefined ? NaN : median(list.map((s) => perRequest(s, [c.service!])));
    return { name: c.name, group: c.group!, rps: median(list.map((s) => s.rps)), p50: median(list.map((s) => s.p50 ?? NaN)), p99: median(list.map((s) => s.p99 ?? NaN)), proxyUs, upstreamUs, non2xx: list.reduce((n, s) => n + s.non2xx + s.errors, 0), loadgenCpu: median(list.map((s) => s.loadgenCpu)) };
  });
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${pin ? 'servers on CPU 0, load generator on CPU 1' : 'not pinned'}, Portcullis from ${flags.dist ? 'dist/ (compiled)' : 'src/ (type-stripped)'} with NODE_OPTIONS "${IMAGE_NODE_OPTIONS}" (the image's)`;
  const lines = [
    `Portcullis load bench — ${new Date().toISOString()}`,
    `machine: ${machine}`,
    `load average (1 min): ${loadAtStart.toFixed(2)} at start, ${loadavg()[0]!.toFixed(2)} at the end (the bench itself keeps about 2 busy)`,
    `method: ${CONNECTIONS} keep-alive mTLS connections (HTTP/2 and gRPC: ${CONNECTIONS} sessions × ${STREAMS} concurrent streams), closed loop, ${DURATION_MS} ms per sample after ${WARMUP_MS} ms warm-up, ${ROUNDS} rounds alternating cases; medians`,
    ...GROUPS.flatMap((group) => {
      const rows = summary.filter((s) => s.group === group.name);
      if (rows.length === 0) return [];
      const direct = rows.find((s) => s.name === group.direct);
      const nginxRow = rows.find((s) => s.name === group.nginx);
      return [
        '',
        `${group.name}: / direct is to ${group.direct}, / nginx to ${group.nginx}`,
        '',
        '| case | req/s | p50 ms | p99 ms | / direct | / nginx | CPU µs/req | service CPU µs/req | errors | Portcullis RSS MiB | loadgen CPU % |',
        '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
        ...rows.map((s) => `| ${s.name} | ${fixed(s.rps, 0)} | ${fixed(s.p50, 2)} | ${fixed(s.p99, 2)} | ${direct ? (s.rps / direct.rps).toFixed(2) : '–'} | ${nginxRow ? (s.rps / nginxRow.rps).toFixed(2) : '–'} | ${fixed(s.proxyUs, 1)} | ${fixed(s.upstreamUs, 1)} | ${s.non2xx} | ${fixed(peakRss.get(s.name) ?? NaN, 0)} | ${fixed(s.loadgenCpu, 0)} |`),
      ];
    }),
    ...(notes.length ? [''] : []),
    ...notes.map((n) => `note: ${n}`),
  ];
  const build = flags.dist ? 'dist/' : 'src/ (type-stripped)';
  const targets = targetRows({
    build,
    startup,
    idle,
    cases: Object.fromEntries(summary.map((s) => [s.name, { proxyUs: s.proxyUs, p99: s.p99, rssMiB: peakRss.get(s.name) }])),
    whyMissing,
    connections: CONNECTIONS,
    streams: STREAMS,
  });
  lines.push('', ...targetTable(targets, build));
  if (!flags.dist) lines.push('', 'note: Portcullis ran from src/ (types stripped at load, which costs memory and start-up time): the targets name dist/ (npm run bench)');
  const table = lines.join('\n') + '\n';
  process.stdout.write(table);
  if (!quick) {
    const out = flags.out ?? join(HERE, 'results', `load-${new Date().toISOString().replace(/[:.]/g, '-')}.md`);
    mkdirSync(join(HERE, 'results'), { recursive: true });
    writeFileSync(out, table);
    writeFileSync(join(HERE, 'results', 'latest.json'), JSON.stringify({ machine, loadAverage: [loadAtStart, loadavg()[0]], summary, targets, startup, idleConnections: idle, rounds: Object.fromEntries(samples) }, null, 2));
    process.stdout.write(`written to ${out}\n`);
  }
  // A profiled proxy writes its .cpuprofile on a graceful exit.
  await Promise.all(profiled.map((child) => new Promise((resolve) => {
    child.once('exit', resolve);
    child.kill('SIGTERM');
  })));
  if (profiled.length) process.stdout.write(`CPU profile in ${PROFILE_DIR} (summarise: node bench/profile.ts FILE)\n`);
  cleanup();
  process.exit(summary.every((s) => s.rps > 0) ? 0 : 1);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${(error as Error).stack ?? String(error)}\n`);
  cleanup();
  process.exit(1);
});
