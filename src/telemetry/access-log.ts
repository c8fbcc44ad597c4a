// The access log (SPEC "Responses", `accessLog.file`): one JSON line per request, refusals
// included, so every request id a caller was handed can be found. Off by default; when off, the
// request path builds no record at all.
import { createJsonLines, type JsonLines } from './json-lines.ts';
import { auditTime } from './audit.ts';

export type Protocol = 'http1' | 'h2' | 'grpc';

/** One request, filled in as it passes the stages; written when its answer ends. */
export interface AccessRecord {
  time: string;
  request_id: string;
  /** The peer's SPIFFE ID, or "" before one was established. */
  peer: string;
  method: string;
  /** The normalised path, never the query (it can carry secrets); the raw target's length-capped form if it was refused as a bad path. */
  path: string;
  route: string;
  status: number;
  /** `allowed` for an answered request, else the SPEC refusal reason. */
  reason: string;
  protocol: Protocol;
  /** Response body bytes sent to the client. */
  bytes: number;
  duration_ms: number;
}

export interface AccessLog {
  /** A new record for a request that started at `startedMs` (performance.now()). */
  begin(requestId: string, peer: string, method: string, protocol: Protocol): AccessRecord;
  end(record: AccessRecord, startedMs: number): void;
  flush(): Promise<void>;
}

/** `file`: "off", "-" (stdout) or a path. Undefined when off. */
export function createAccessLog(file: string, onDrop: () => void): AccessLog | undefined {
  if (file === 'off') return undefined;
  const out: JsonLines<AccessRecord> = createJsonLines<AccessRecord>(file, onDrop);
  return {
    begin: (requestId, peer, method, protocol) => ({ time: auditTime(), request_id: requestId, peer, method, path: '', route: 'none', status: 0, reason: 'allowed', protocol, bytes: 0, duration_ms: 0 }),
    end(record, startedMs) {
      record.duration_ms = Math.round((performance.now() - startedMs) * 1000) / 1000;
      out.write(record);
    },
    flush: () => out.flush(),
  };
}
