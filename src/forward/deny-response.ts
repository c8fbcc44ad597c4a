// The SPEC deny format: JSON `{"error", "reason", "request_id"}` with the reason's status.
import type { ServerResponse } from 'node:http';
import type { Denial } from '../decision/denial.ts';

/** Writes the denial; returns the body's length in bytes (0 when the answer had already begun and is cut instead). */
export function writeDenial(res: ServerResponse, denied: Denial, requestId: string): number {
  if (res.headersSent) {
    res.destroy();
    return 0;
  }
  const body = `{"error":${JSON.stringify(denied.error)},"reason":"${denied.reason}","request_id":${JSON.stringify(requestId)}}`;
  res.writeHead(denied.status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-request-id': requestId,
  });
  res.end(body);
  return body.length;
}

/** For errors the HTTP parser raises before a request object exists (malformed, oversized). */
export function rawDenialResponse(status: number, statusText: string, denied: Denial, requestId = ''): string {
  const body = `{"error":${JSON.stringify(denied.error)},"reason":"${denied.reason}","request_id":${JSON.stringify(requestId)}}`;
  const id = requestId === '' ? '' : `x-request-id: ${requestId}\r\n`;
  return `HTTP/1.1 ${status} ${statusText}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\n${id}date: ${new Date().toUTCString()}\r\nconnection: close\r\n\r\n${body}`;
}
