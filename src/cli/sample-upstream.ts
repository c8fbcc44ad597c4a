// The demo's sample service: answers with what it was sent (method, path, the HTTP version it was
// spoken to in, the identity headers Portcullis added), so a newcomer sees exactly what a service
// behind the sidecar receives. GET /orders/{id}/refund/events is a server-sent-events stream
// instead, one event every 500 ms until the client goes: the demo shows Portcullis cutting it when
// the grant that admitted it expires (SPEC "Streams"). `/mcp` is the sample MCP server
// (sample-mcp-server.ts), on the same port: one service behind one sidecar, as in production.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { RequestHandler } from './sample-mcp-server.ts';

const SHOWN = ['x-forwarded-client-cert', 'x-request-id', 'x-forwarded-for', 'x-forwarded-proto', 'x-jit-grant-id'];

const EVENTS_PATH = /^\/orders\/([^/?]+)\/refund\/events(?:\?|$)/;
export const EVENT_INTERVAL_MS = 500;
/** A stream nobody cuts still ends (10 minutes): the sample service must not hold a socket forever. */
const MAX_EVENTS = 1200;

const MCP_PATH = /^\/mcp(?:\?|$)/;

export function createSampleUpstream(): Server {
  const mcp = lazyMcp();
  return createServer((req, res) => {
    if (MCP_PATH.test(req.url ?? '')) {
      mcp(req, res);
      return;
    }
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

/**
 * The MCP handler, loaded on the first `/mcp` request: the SDK is a development dependency, so
 * the rest of the sample service works without it, and `/mcp` then says what is missing.
 */
function lazyMcp(): RequestHandler {
  let loading: Promise<RequestHandler> | undefined;
  return (req, res) => {
    loading ??= import('./sample-mcp-server.ts').then((m) => m.createSampleMcpHandler());
    loading.then(
      (handle) => handle(req, res),
      (error: unknown) => {
        req.resume();
        const body = JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32603, message: `the sample MCP server needs the development dependencies (npm ci): ${String(error)}` } }) + '\n';
        res.writeHead(503, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
      },
    );
  };
}
