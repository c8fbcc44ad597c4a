// The proxy's open HTTP/1.1 connections: one timer checks every connection's head and idle
// limits (a timer per socket costs per request; Node's server checked its connections the same
// way, every connectionsCheckingInterval), and a graceful stop closes the idle ones.
import type { Http1Connection } from './http1-connection.ts';

export class Http1Connections {
  private readonly open = new Set<Http1Connection<unknown>>();
  private readonly everyMs: number;
  private sweep: NodeJS.Timeout | undefined;

  /** `headersTimeoutMs`: checked at a tenth of it, between 100 ms and 1 s (as server.ts set Node's). */
  constructor(headersTimeoutMs: number) {
    this.everyMs = Math.min(1000, Math.max(100, Math.floor(headersTimeoutMs / 10)));
  }

  add(connection: Http1Connection<unknown>): void {
    this.open.add(connection);
    if (this.sweep === undefined) {
      this.sweep = setInterval(() => {
        const now = performance.now();
        for (const c of this.open) c.expireIfStale(now);
      }, this.everyMs);
      this.sweep.unref();
    }
  }

  /** The connection's socket has closed (its own 'close' listener says so: one per socket is enough). */
  delete(connection: Http1Connection<unknown>): void {
    this.open.delete(connection);
    if (this.open.size === 0 && this.sweep !== undefined) {
      clearInterval(this.sweep);
      this.sweep = undefined;
    }
  }

  /** Closes every connection with no request in progress (the rest close after their answer). */
  closeIdle(): void {
    for (const c of this.open) c.closeIfIdle();
  }

  destroyAll(): void {
    for (const c of this.open) c.socket.destroy();
  }
}
