// The SPEC deny format: JSON `{"error", "reason", "request_id"}` with the reason's status.
import type { Denial } from '../decision/denial.ts';
import { rawHead } from './raw-response.ts';

/** The SPEC denial body. */
export function denialBody(denied: Denial, requestId: string): string {
  return `{"error":${JSON.stringify(denied.error)},"reason":"${denied.reason}","request_id":${JSON.stringify(requestId)}}`;
}

/**
 * SPEC "JSON-RPC and MCP routes": a refused call's JSON-RPC error object, so agent frameworks
 * show the reason to the model and the person. `code` is -32001 for a refusal (JSON-RPC's
 * server-defined range), or JSON-RPC's own -32700/-32600 for a body that is not one.
 */
export function jsonRpcError(id: string | number | null | undefined, denied: Denial, requestId: string, code = -32001): string {
  return `{"jsonrpc":"2.0","id":${JSON.stringify(id ?? null)},"error":{"code":${code},"message":"${denied.reason}","data":{"reason":"${denied.reason}","request_id":${JSON.stringify(requestId)}}}}`;
}

/** Where a denial is written: an HTTP/1.1 answer (http1/response-writer.ts). */
export interface DenialTarget {
  readonly headersSent: boolean;
  writeHead(status: number, fields: readonly string[]): void;
  end(body: string): void;
  destroy(): void;
}

/**
 * Writes the denial (`body`: another JSON body in its place, a JSON-RPC error); returns the body's
 * length in bytes (0 when the answer had already begun and is cut instead).
 */
export function writeDenial(res: DenialTarget, denied: Denial, requestId: string, body = denialBody(denied, requestId)): number {
  if (res.headersSent) {
    res.destroy();
    return 0;
  }
  const length = Buffer.byteLength(body);
  res.writeHead(denied.status, ['content-type', 'application/json', 'content-length', String(length), 'cache-control', 'no-store', 'x-request-id', requestId]);
  res.end(body);
  return length;
}

/**
 * The whole denial as bytes to write, with `connection: close`: for a connection that is then
 * closed (a refusal of the HTTP/1.1 reader, an upgrade refused), where no answer writer is used.
 */
export function rawDenialResponse(denied: Denial, requestId = ''): string {
  const body = denialBody(denied, requestId);
  const fields = ['content-type', 'application/json', 'content-length', String(Buffer.byteLength(body)), 'cache-control', 'no-store'];
  if (requestId !== '') fields.push('x-request-id', requestId);
  fields.push('date', new Date().toUTCString(), 'connection', 'close');
  return rawHead(denied.status, fields) + body;
}
