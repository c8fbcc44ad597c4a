// One request to a case before it is measured: a case that does not answer 2xx (gRPC: status 0)
// is a broken setup, not a figure, and a server still starting (nginx forks its worker after it
// listens) must not stall the first sample. Used by run.ts for every case.
import { request } from 'node:https';
import { readFileSync } from 'node:fs';
import { answerOk, callOnce } from './h2-call.ts';

export interface ProbeTarget {
  port: number;
  path: string;
  method: string;
  headers: Record<string, string>;
  /** HTTP/2 (`tls: false`: h2c; `grpc`: a unary call) or HTTP/1.1 over mTLS. */
  h2?: { tls: boolean; grpc: boolean };
  files: { ca: string; cert: string; key: string };
}

/** Undefined when the case answered as it should, else what it answered. */
export async function probe(t: ProbeTarget, timeoutMs = 10_000): Promise<string | undefined> {
  if (t.h2) {
    const answer = await callOnce({ port: t.port, tls: t.h2.tls ? t.files : undefined, path: t.path, method: t.method, headers: t.headers, grpc: t.h2.grpc }, timeoutMs);
    if (answerOk(answer, t.h2.grpc)) return undefined;
    return answer.failed && answer.status === 0 ? 'no answer (stream or session failed)' : `HTTP ${answer.status}${t.h2.grpc ? `, grpc-status ${answer.grpcStatus ?? '–'} ${answer.grpcMessage ?? ''}`.trimEnd() : ''}`;
  }
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port: t.port, path: t.path, method: t.method, headers: t.headers, servername: 'localhost', ca: readFileSync(t.files.ca), cert: readFileSync(t.files.cert), key: readFileSync(t.files.key), agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode! >= 200 && res.statusCode! <= 299 ? undefined : `HTTP ${res.statusCode}`));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (error) => resolve(error.message));
    req.end();
  });
}
