// A closed-loop HTTP/1.1 load generator over mTLS: N keep-alive TLS connections, each sending the
// next request as soon as the previous response is complete, for a fixed duration. Presents a
// client certificate (wrk cannot). Prints one JSON line: requests/s, latency percentiles, errors.
// Usage: node loadgen.ts '{"port":8443,"path":"/x","headers":{},"ca":"...","cert":"...","key":"...","connections":32,"durationMs":5000}'
import { connect, type TLSSocket } from 'node:tls';
import { readFileSync } from 'node:fs';

interface Options {
  port: number;
  host?: string;
  path: string;
  method?: string;
  headers?: Record<string, string>;
  ca: string;
  cert: string;
  key: string;
  connections: number;
  durationMs: number;
  warmupMs?: number;
  /** Processes whose CPU time (with their direct children's) is reported for the recorded window. */
  watchPids?: number[];
}

const options = JSON.parse(process.argv[2] ?? '{}') as Options;
const ca = readFileSync(options.ca);
const cert = readFileSync(options.cert);
const key = readFileSync(options.key);
const head = Buffer.from(
  `${options.method ?? 'GET'} ${options.path} HTTP/1.1\r\nhost: localhost\r\n` +
    Object.entries(options.headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join('') +
    '\r\n',
);

const latencies: number[] = [];
let completed = 0;
let errors = 0;
let non2xx = 0;
let recording = false;
let running = true;

function worker(): Promise<void> {
  return new Promise((resolve) => {
    let socket: TLSSocket;
    let buffer: Buffer = Buffer.alloc(0);
    let sentAt = 0n;
    const send = () => {
      if (!running) {
        socket.end();
        resolve();
        return;
      }
      sentAt = process.hrtime.bigint();
      socket.write(head);
    };
    const open = () => {
      socket = connect({ port: options.port, host: options.host ?? '127.0.0.1', servername: 'localhost', ca, cert, key }, send);
      socket.setNoDelay(true);
      socket.on('data', (chunk: Buffer) => {
        buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
        for (;;) {
          const end = buffer.indexOf('\r\n\r\n');
          if (end === -1) return;
          const headText = buffer.subarray(0, end).toString('latin1');
          const match = /\r\ncontent-length:\s*(\d+)/i.exec(headText);
          let total: number;
          if (match) total = end + 4 + Number(match[1]);
          else {
            const last = buffer.indexOf('\r\n0\r\n\r\n', end);
            if (last === -1) return;
            total = last + 7;
          }
          if (buffer.length < total) return;
          const status = Number(headText.slice(9, 12));
          buffer = buffer.subarray(total);
          if (recording) {
            completed++;
            latencies.push(Number(process.hrtime.bigint() - sentAt) / 1e6);
            if (status < 200 || status > 299) non2xx++;
          }
          send();
        }
      });
      socket.on('error', () => {
        errors++;
      });
      socket.on('close', () => {
        if (running) {
          buffer = Buffer.alloc(0);
          setTimeout(open, 10);
        } else resolve();
      });
    };
    open();
  });
}

/** User + system CPU seconds of a process and its direct children (Linux /proc), or 0. */
function cpuSeconds(pid: number): number {
  const ticks = 100; // USER_HZ: 100 on every Linux architecture that matters
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    let total = (Number(fields[11]) + Number(fields[12])) / ticks;
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    for (const child of children ? children.split(' ') : []) total += cpuSeconds(Number(child));
    return total;
  } catch {
    return 0;
  }
}
const cpuAt = () => Object.fromEntries((options.watchPids ?? []).map((pid) => [pid, cpuSeconds(pid)]));

const workers = Array.from({ length: options.connections }, worker);
setTimeout(() => {
  recording = true;
  const started = process.hrtime.bigint();
  const cpuStart = cpuAt();
  setTimeout(() => {
    running = false;
    recording = false;
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const cpuEnd = cpuAt();
    const cpu = Object.fromEntries(Object.entries(cpuEnd).map(([pid, end]) => [pid, end - (cpuStart[pid] ?? 0)]));
    latencies.sort((a, b) => a - b);
    const pick = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
    process.stdout.write(JSON.stringify({ requests: completed, cpu, rps: completed / seconds, p50: pick(0.5), p99: pick(0.99), errors, non2xx }) + '\n');
    void Promise.race([Promise.all(workers), new Promise((r) => setTimeout(r, 1000))]).then(() => process.exit(0));
  }, options.durationMs);
}, options.warmupMs ?? 1000);
