// The connection-scale case (issue 15: "10,000 idle mTLS keep-alive connections, extra RSS"):
// opens N mTLS connections to Portcullis, each presenting the client certificate and sending one
// request (so each is a real keep-alive connection that went through the proxy, not a bare
// handshake), waits with all of them open and idle, and reads Portcullis's RSS against its RSS
// before. Prints one JSON line (IdleResult), then closes everything.
//
// The generator must hold N connections itself with as little as it can: raw `tls.connect` with
// one shared SecureContext (the certificate and key parsed once, not per connection), one
// request buffer for all, and no per-connection state once its answer is in. Opening is bounded
// (at most `concurrency` handshakes in flight and `ratePerSecond`), so a 2-core machine keeps a
// core for everything else; Portcullis's default idle timeout (60 s) must not pass before the
// last connection is in, and any connection the server closed is counted (`closedEarly`).
// Before `rssBefore`, a warm-up sends requests on a few connections and closes them, so the
// proxy's first-request costs (JIT, pools, caches) are not charged to the idle connections.
// Usage: node idle-connections.ts '{"port":8443,"pid":123,"path":"/open","ca":…,"cert":…,"key":…,"connections":10000}'
import { connect, createSecureContext, type TLSSocket } from 'node:tls';
import { readFileSync } from 'node:fs';
import { rssMiB } from './rss.ts';
import { cpuSeconds } from './measure.ts';

interface Options {
  port: number;
  /** Portcullis's pid: its RSS is read. */
  pid: number;
  path: string;
  ca: string;
  cert: string;
  key: string;
  connections: number;
  concurrency?: number;
  ratePerSecond?: number;
  warmupRequests?: number;
  /** How long the connections sit idle before the RSS is read, ms. */
  settleMs?: number;
  timeoutMs?: number;
}

export interface IdleResult {
  connections: number;
  /** Connections that got their 2xx answer and were still open at the reading. */
  open: number;
  failed: number;
  closedEarly: number;
  firstError?: string;
  rssBeforeMiB: number;
  rssAfterMiB: number;
  extraMiB: number;
  perConnectionKiB: number;
  openingMs: number;
  /** CPU per connection opened (handshake and its one request), ms: the server's, and the generator's own. */
  serverCpuMsPerConnection: number;
  generatorCpuMsPerConnection: number;
  /** The generator's own RSS with every connection open: what the client side paid. */
  generatorRssMiB: number;
}

const options = JSON.parse(process.argv[2] ?? '{}') as Options;
const secureContext = createSecureContext({ ca: readFileSync(options.ca), cert: readFileSync(options.cert), key: readFileSync(options.key) });
const REQUEST = Buffer.from(`GET ${options.path} HTTP/1.1\r\nhost: localhost\r\n\r\n`);
const HEAD_END = Buffer.from('\r\n\r\n');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let failed = 0;
let closedEarly = 0;
let firstError: string | undefined;
let measuring = true;

/** Reads one answer off the socket: resolves true on a complete 2xx answer, false on anything else. */
function answer(socket: TLSSocket): Promise<boolean> {
  return new Promise((resolve) => {
    let buffer: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
      const end = buffer.indexOf(HEAD_END);
      if (end === -1) return;
      const head = buffer.subarray(0, end).toString('latin1');
      const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      // The bench's upstream always sends a length; anything else is not the answer we expect.
      if (!length || buffer.length < end + 4 + Number(length[1])) {
        if (!length) finish(false);
        return;
      }
      finish(/^HTTP\/1\.1 2\d\d /.test(head));
    };
    const onEnd = () => finish(false);
    const finish = (ok: boolean) => {
      socket.off('data', onData);
      socket.off('close', onEnd);
      resolve(ok);
    };
    socket.on('data', onData);
    socket.once('close', onEnd);
  });
}

/** One connection with `requests` requests in turn; the socket stays open (resolves it) or is undefined on failure. */
function openOne(requests: number): Promise<TLSSocket | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ port: options.port, host: '127.0.0.1', servername: 'localhost', secureContext });
    // As loadgen.ts does: the request is not held back by Nagle behind the handshake's last flight.
    socket.setNoDelay(true);
    const fail = (error: Error) => {
      failed++;
      firstError ??= error.message;
      socket.destroy();
      resolve(undefined);
    };
    socket.once('error', fail);
    socket.once('secureConnect', async () => {
      for (let i = 0; i < requests; i++) {
        socket.write(REQUEST);
        if (!(await answer(socket))) return fail(new Error('no 2xx answer'));
      }
      socket.off('error', fail);
      // Idle from here on: errors and closes are counted, nothing else is kept.
      socket.on('error', () => {});
      socket.once('close', () => {
        if (measuring) closedEarly++;
      });
      resolve(socket);
    });
  });
}

async function main(): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  const warmup = options.warmupRequests ?? 1000;
  const warmers = await Promise.all(Array.from({ length: 4 }, () => openOne(Math.ceil(warmup / 4))));
  measuring = false;
  for (const socket of warmers) socket?.destroy();
  await sleep(1000);
  measuring = true;
  failed = 0;
  closedEarly = 0;
  firstError = undefined;
  const rssBeforeMiB = rssMiB(options.pid);

  const sockets: TLSSocket[] = [];
  const concurrency = options.concurrency ?? 32;
  const interval = 1000 / (options.ratePerSecond ?? 1000);
  const started = performance.now();
  const serverCpuAt = cpuSeconds(options.pid);
  const ownCpuAt = process.cpuUsage();
  let next = 0;
  const opener = async () => {
    while (next < options.connections && Date.now() < deadline) {
      const i = next++;
      const due = started + i * interval;
      if (due > performance.now()) await sleep(due - performance.now());
      const socket = await openOne(1);
      if (socket) sockets.push(socket);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, opener));
  const openingMs = performance.now() - started;
  const serverCpu = cpuSeconds(options.pid) - serverCpuAt;
  const ownCpu = process.cpuUsage(ownCpuAt);
  await sleep(options.settleMs ?? 2000);
  const rssAfterMiB = rssMiB(options.pid);
  const open = sockets.filter((s) => !s.destroyed).length;
  const extraMiB = rssAfterMiB - rssBeforeMiB;
  const result: IdleResult = {
    connections: options.connections,
    open,
    failed,
    closedEarly,
    firstError,
    rssBeforeMiB,
    rssAfterMiB,
    extraMiB,
    perConnectionKiB: open ? (extraMiB * 1024) / open : NaN,
    openingMs,
    serverCpuMsPerConnection: (serverCpu * 1000) / options.connections,
    generatorCpuMsPerConnection: (ownCpu.user + ownCpu.system) / 1000 / options.connections,
    generatorRssMiB: process.memoryUsage.rss() / 2 ** 20,
  };
  process.stdout.write(JSON.stringify(result) + '\n');
  measuring = false;
  for (const socket of sockets) socket.destroy();
  await sleep(200);
  process.exit(0);
}

void main();
