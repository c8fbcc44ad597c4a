// The audit log (SPEC "Audit log"): one JSON line per privileged decision, written through an
// asynchronous buffered destination so the request path never waits on disk. Fields are named
// here, once; a token or key has no field to land in.
import { pino } from 'pino';

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

export function createAuditLog(file: string): AuditLog {
  const destination = pino.destination({ dest: file === '-' ? 1 : file, sync: false, minLength: 0, mkdir: true });
  return {
    write(record) {
      destination.write(JSON.stringify(record) + '\n');
    },
    flush() {
      return new Promise((resolve) => {
        destination.flush((error) => {
          if (error) resolve();
          else resolve();
        });
      });
    },
  };
}

/** For tests and embedding: keeps records in memory. */
export function memoryAuditLog(): AuditLog & { records: AuditRecord[] } {
  const records: AuditRecord[] = [];
  return { records, write: (record) => void records.push(record), flush: async () => undefined };
}
