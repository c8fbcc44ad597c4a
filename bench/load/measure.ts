// The measuring window every load generator shares (HTTP/1.1 in loadgen.ts, HTTP/2 and gRPC in
// h2-loadgen.ts): warm-up, then a fixed window in which completed requests, their latencies and
// the CPU time of the watched processes are recorded, then one JSON line on stdout. One copy of
// the accounting, so every case of the bench is counted the same way (bench/README.md "Method").
import { readFileSync } from 'node:fs';

export interface WindowOptions {
  durationMs: number;
  warmupMs?: number;
  /** Processes whose CPU time (with their direct children's) is reported for the recorded window. */
  watchPids?: number[];
}

/** User + system CPU seconds of a process and its direct children (Linux /proc), or 0. */
export function cpuSeconds(pid: number): number {
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

export class Recorder {
  /** Inside the measured window: completions count. */
  recording = false;
  /** False once the window has closed: workers stop sending and finish. */
  running = true;
  private completed = 0;
  private errors = 0;
  private non2xx = 0;
  private readonly latencies: number[] = [];

  /** One exchange finished; `ok` is a 2xx answer (for gRPC: grpc-status 0). */
  done(sentAt: bigint, ok: boolean): void {
    if (!this.recording) return;
    this.completed++;
    this.latencies.push(Number(process.hrtime.bigint() - sentAt) / 1e6);
    if (!ok) this.non2xx++;
  }

  /** A connection or stream failed: counted at any time, so a broken case never looks clean. */
  error(): void {
    this.errors++;
  }

  /**
   * Runs the warm-up and the window, prints the sample, then gives `workers` a second to close
   * their connections and exits. `loadgenCpu` is this process's own CPU share of one core: near
   * 100 the load generator, not the case, is the limit.
   */
  run(options: WindowOptions, workers: () => Promise<unknown>[]): void {
    const cpuAt = () => Object.fromEntries((options.watchPids ?? []).map((pid) => [pid, cpuSeconds(pid)]));
    setTimeout(() => {
      this.recording = true;
      const started = process.hrtime.bigint();
      const ownStart = process.cpuUsage();
      const cpuStart = cpuAt();
      setTimeout(() => {
        this.running = false;
        this.recording = false;
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        const cpuEnd = cpuAt();
        const own = process.cpuUsage(ownStart);
        const cpu = Object.fromEntries(Object.entries(cpuEnd).map(([pid, end]) => [pid, end - (cpuStart[pid] ?? 0)]));
        this.latencies.sort((a, b) => a - b);
        const pick = (q: number) => this.latencies[Math.min(this.latencies.length - 1, Math.floor(q * this.latencies.length))] ?? NaN;
        const loadgenCpu = ((own.user + own.system) / 1e6 / seconds) * 100;
        process.stdout.write(JSON.stringify({ requests: this.completed, cpu, rps: this.completed / seconds, p50: pick(0.5), p99: pick(0.99), errors: this.errors, non2xx: this.non2xx, loadgenCpu }) + '\n');
        void Promise.race([Promise.all(workers()), new Promise((r) => setTimeout(r, 1000))]).then(() => process.exit(0));
      }, options.durationMs);
    }, options.warmupMs ?? 1000);
  }
}
