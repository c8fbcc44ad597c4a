// The demo's sample service: answers with what it was sent (method, path, the HTTP version it was
// spoken to in, the identity headers Portcullis added), so a newcomer sees exactly what a service
// behind the sidecar receives. GET /orders/{id}/refund/events is a server-sent-events stream
// instead, one event every 500 ms until the client goes: the demo shows Portcullis cutting it when
// the grant that admitted it expires (SPEC "Streams").
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

const SHOWN = ['x-forwarded-client-cert', 'x-request-id', 'x-forwarded-for', 'x-forwarded-proto', 'x-jit-grant-id'];

const EVENTS_PATH = /^\/orders\/([^/?]+)\/refund\/events(?:\?|$)/;
export const EVENT_INTERVAL_MS = 500;
/** A stream nobody cuts still ends (10 minutes): the sample service must not hold a socket forever. */
const MAX_EVENTS = 1200;

export function createSampleUpstream(): Server {
  return createServer((req, res) => {
    const events = req.method === 'GET' ? EVENTS_PATH.exec(req.url ?? '') : null;
    if (events) {
      streamEvents(req, res, events[1]!);
      return;
    }
    let bytes = 0;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    req.on('end', () => {
      const headers: Record<string, string | string[] | undefined> = {};
      for (const name of SHOWN) if (req.headers[name] !== undefined) headers[name] = req.headers[name];
      const body = JSON.stringify({ service: 'sample-upstream', method: req.method, path: req.url, http_version: req.httpVersion, received_body_bytes: bytes, headers }, null, 2) + '\n';
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
}

/** `data: …` every EVENT_INTERVAL_MS, chunked (no length: it ends when the client or the proxy goes). */
function streamEvents(req: IncomingMessage, res: ServerResponse, order: string): void {
  req.resume();
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
  let sent = 0;
  const send = () => {
    sent++;
    res.write(`data: order ${order} refund: event ${sent} at ${new Date().toISOString().slice(11, 23)}Z\n\n`);
    if (sent >= MAX_EVENTS) {
      clearInterval(timer);
      res.end();
    }
  };
  const timer = setInterval(send, EVENT_INTERVAL_MS);
  send();
  res.on('close', () => clearInterval(timer));
}
