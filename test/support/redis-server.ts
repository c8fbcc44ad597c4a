// A real redis-server for the revocation bus tests: started on a free loopback port with no
// persistence (`--save '' --appendonly no`), so a restart is Redis coming back empty, unless
// the test asks to keep its data (`restart({ keepData: true })` stops it with SAVE first and
// starts it on the same port with the same dump file). Stopped with SIGTERM, killed if stuck.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from 'redis';

export const REDIS_SERVER = process.env.REDIS_SERVER ?? 'redis-server';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** A client for the test itself (XADD, CLIENT KILL, ...); closed by stop(). */
  client(): Promise<ReturnType<typeof createClient>>;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops and starts on the same port; `keepData` saves the dataset first and loads it again. */
  restart(options?: { keepData?: boolean; downMs?: number }): Promise<void>;
  close(): Promise<void>;
}

/** `auth`: the ACL user the test's own clients (and the readiness probe) log in as. */
export async function startRedis(extraArgs: string[] = [], auth: { username?: string; password?: string } = {}): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-redis-'));
  let child: ChildProcess | undefined;
  let keep = false;
  const clients: ReturnType<typeof createClient>[] = [];
  const url = `redis://127.0.0.1:${port}`;

  async function waitForPong(): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const probe = createClient({ url, ...auth, socket: { reconnectStrategy: false, connectTimeout: 500 } });
      probe.on('error', () => undefined);
      try {
        await probe.connect();
        if ((await probe.ping()) === 'PONG') {
          probe.destroy();
          return;
        }
      } catch {
        // A client that never opened (redis-server still binding) throws on destroy: skip it.
        if (probe.isOpen) probe.destroy();
      }
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PONG within 10s`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  const server: RedisServer = {
    port,
    url,
    async client() {
      const c = createClient({ url, ...auth, socket: { reconnectStrategy: 50 } });
      c.on('error', () => undefined);
      await c.connect();
      clients.push(c);
      return c;
    },
    async start() {
      // No save points: nothing is written but by an explicit SAVE (restart with keepData).
      if (!keep) rmSync(join(dir, 'dump.rdb'), { force: true });
      const persistence = ['--dir', dir, '--dbfilename', 'dump.rdb'];
      child = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...persistence, ...extraArgs], { stdio: 'ignore' });
      child.once('error', () => undefined);
      await waitForPong();
    },
    async stop() {
      const running = child;
      child = undefined;
      if (!running || running.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
      running.kill('SIGTERM');
      const timer = setTimeout(() => running.kill('SIGKILL'), 3_000);
      await exited;
      clearTimeout(timer);
    },
    async restart(options = {}) {
      if (options.keepData) {
        const c = createClient({ url, ...auth, socket: { reconnectStrategy: false } });
        c.on('error', () => undefined);
        await c.connect();
        await c.sendCommand(['SAVE']);
        c.destroy();
      }
      keep = options.keepData ?? false;
      await server.stop();
      if (options.downMs) await new Promise((r) => setTimeout(r, options.downMs));
      await server.start();
    },
    async close() {
      for (const c of clients) c.destroy();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await server.start();
  return server;
}
