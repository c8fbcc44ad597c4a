// The last lines of a stopping process, in order. pino's asynchronous destination (sonic-boom)
// writes from a buffer while earlier bytes may still be in flight; at process.exit its flushSync
// writes what is buffered at once, ahead of a write still in flight, so "stopped" could reach
// the log before the lines logged just before it. Waiting for the destination to drain before
// exiting keeps the order, bounded so a stuck stderr never holds up the exit.
import { pino } from 'pino';
import type { Logger } from '../telemetry/logger.ts';

interface Destination {
  readonly _writing?: boolean;
  readonly _len?: number;
  once(event: 'drain', listener: () => void): unknown;
  removeListener(event: 'drain', listener: () => void): unknown;
}

/** Resolves once every line logged so far is written (or after `timeoutMs`). */
export function logDrained(logger: Logger, timeoutMs = 2_000): Promise<void> {
  const stream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] as Destination | undefined;
  // Not sonic-boom (a test's Writable), or nothing in flight or buffered: nothing to wait for.
  // `_writing` and `_len` are sonic-boom's own fields (4.x): should a release rename them, this
  // waits for nothing, as before, rather than hang.
  if (!stream || typeof stream.once !== 'function' || (!stream._writing && !stream._len)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      stream.removeListener('drain', done);
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    timer.unref();
    stream.once('drain', done);
  });
}
