// One Portcullis sidecar as its own process (`portcullis run`, from src/ or dist/), so its CPU
// and resident memory are its own, on ports picked here (no log parsing); its audit goes to
// /dev/null and its output is drained, so a chatty child never blocks on a full pipe.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'undici';

export { freePort } from '../../test/support/redis-server.ts';

export interface Sidecar {
  readonly child: ChildProcess;
  readonly port: number;
  readonly adminPort: number;
  /** performance.now() when the process was spawned. */
  readonly spawnedAt: number;
  stderrTail(): string;
  stop(): Promise<void>;
}

export function spawnSidecar(main: string, configFile: string, port: number, adminPort: number): Sidecar {
  const spawnedAt = performance.now();
  const child = spawn(process.execPath, [main, 'run', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PORTCULLIS_LOG_LEVEL: 'warn' } });
  let tail = '';
  child.stdout!.resume();
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (tail = (tail + chunk).slice(-4000)));
  return {
    child,
    port,
    adminPort,
    spawnedAt,
    stderrTail: () => tail,
    stop: () =>
      new Promise((done) => {
        if (child.exitCode !== null || child.signalCode !== null) return done();
        const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
        child.once('exit', () => {
          clearTimeout(timer);
          done();
        });
        child.kill('SIGTERM');
      }),
  };
}

export async function adminGet(sidecar: Sidecar, path: string): Promise<{ status: number; text: string }> {
  const response = await request(`http://127.0.0.1:${sidecar.adminPort}${path}`, { headersTimeout: 5_000, bodyTimeout: 5_000 });
  return { status: response.statusCode, text: await response.body.text() };
}

/** Polls /readyz every `everyMs` until 200; returns performance.now() then. Throws past the deadline. */
export async function untilReady(sidecar: Sidecar, timeoutMs = 30_000, everyMs = 10): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      if ((await adminGet(sidecar, '/readyz')).status === 200) return performance.now();
    } catch {
      // Not listening yet.
    }
    if (sidecar.child.exitCode !== null) throw new Error(`sidecar exited with ${sidecar.child.exitCode}: ${sidecar.stderrTail()}`);
    if (performance.now() > deadline) throw new Error(`sidecar not ready within ${timeoutMs} ms: ${sidecar.stderrTail()}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Resident memory now and at its peak, in bytes (Linux /proc). */
export function rssOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}
