// A JSON-lines file for records written on the request path (audit log, access log): lines are
// batched and written through an asynchronous stream, so a request never waits on disk; if the
// disk falls too far behind, lines are dropped and counted rather than held without bound.
import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Writable } from 'node:stream';

export interface JsonLines<T> {
  write(record: T): void;
  flush(): Promise<void>;
}

/** Lines are batched: written when this many are waiting, or at least this often. */
const BATCH_LINES = 512;
const FLUSH_EVERY_MS = 100;
/** If the disk falls this far behind, lines are dropped (and counted) rather than held in memory. */
const MAX_BACKLOG_BYTES = 32 * 1024 * 1024;

/** `file`: a path, or "-" for stdout. */
export function createJsonLines<T>(file: string, onDrop: () => void = () => undefined): JsonLines<T> {
  if (file !== '-') mkdirSync(dirname(file), { recursive: true });
  const out: Writable = file === '-' ? process.stdout : createWriteStream(file, { flags: 'a' });
  // One write per record would cost more than the request: collect lines, write them in one go.
  let lines: string[] = [];
  const writeBatch = (): void => {
    if (lines.length === 0) return;
    const batch = lines.join('');
    lines = [];
    if (out.writableLength > MAX_BACKLOG_BYTES) {
      onDrop();
      return;
    }
    out.write(batch);
  };
  const timer = setInterval(writeBatch, FLUSH_EVERY_MS);
  timer.unref();
  return {
    write(record) {
      lines.push(JSON.stringify(record) + '\n');
      if (lines.length >= BATCH_LINES) writeBatch();
    },
    flush() {
      writeBatch();
      return new Promise((resolve) => {
        if (out.writableLength === 0) resolve();
        // 'drain' comes only after a write that returned false; an empty write's callback runs
        // once everything written before it is out, whichever way those writes went.
        else out.write('', () => resolve());
      });
    },
  };
}
