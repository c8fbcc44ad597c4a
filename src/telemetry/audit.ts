// The audit log (SPEC "Audit log"): one JSON line per privileged decision, written through an
// asynchronous buffered destination so the request path never waits on disk. Fields are named
// here, once; a token or key has no field to land in.
import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Writable } from 'node:stream';

export interface AuditRecord {
  readonly time: string;
  readonly request_id: string;
  readonly peer: string;
  readonly action: string;
  readonly resource: string;
  readonly route: string;
  readonly decision: 'allow' | 'deny';
  readonly reason: string;
  readonly source: string;
  readonly grant_jti: string | undefined;
  readonly approver: string | undefined;
  readonly justification: string | undefined;
  readonly intent: string | undefined;
  readonly posture_tier: string | undefined;
  /** Decision latency in milliseconds. */
  readonly latency_ms: number;
  /** The PDP's own reason (rule id, OPA reason), for the security team only. */
  readonly pdp_detail?: string | undefined;
}

export interface AuditLog {
  write(record: AuditRecord): void;
  flush(): Promise<void>;
}

/** Lines are batched: written when this many are waiting, or at least this often. */
const BATCH_LINES = 512;
const FLUSH_EVERY_MS = 100;
/** If the disk falls this far behind, lines are dropped (and counted) rather than held in memory. */
const MAX_BACKLOG_BYTES = 32 * 1024 * 1024;

export function createAuditLog(file: string, onDrop: () => void = () => undefined): AuditLog {
  if (file !== '-') mkdirSync(dirname(file), { recursive: true });
  const out: Writable = file === '-' ? process.stdout : createWriteStream(file, { flags: 'a' });
  // One write per decision would cost more than the decision: collect lines, write them in one go.
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

/** For tests and embedding: keeps records in memory. */
export function memoryAuditLog(): AuditLog & { records: AuditRecord[] } {
  const records: AuditRecord[] = [];
  return { records, write: (record) => void records.push(record), flush: async () => undefined };
}

let isoMs = 0;
let isoText = '';
/** RFC 3339 time of now, formatted once per millisecond (many decisions share one). */
export function auditTime(): string {
  const ms = Date.now();
  if (ms !== isoMs) {
    isoMs = ms;
    isoText = new Date(ms).toISOString();
  }
  return isoText;
}
