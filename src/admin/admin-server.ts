// The admin listener (SPEC "Admin listener"): loopback by default. Issue 2 serves health,
// readiness and metrics; the decision and reload endpoints join as those features land.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Metrics } from '../telemetry/metrics.ts';

export interface AdminHooks {
  readonly metrics: Metrics;
  /** Why the proxy is not ready, or undefined when it is. */
  readonly notReadyReason: () => string | undefined;
  /** Extra routes: `METHOD /path` → handler returning status and JSON body. */
  readonly routes?: Readonly<Record<string, (body: unknown) => Promise<[number, unknown]> | [number, unknown]>>;
}

const MAX_BODY = 64 * 1024;

function isLoopbackAddress(address: string | undefined): boolean {
  return address !== undefined && (address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.'));
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new Error(`body larger than ${MAX_BODY} bytes`);
    chunks.push(chunk);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new Error('the body is not valid JSON');
  }
}

export function createAdminServer(hooks: AdminHooks): Server {
  return createServer({ requestTimeout: 10_000, headersTimeout: 5_000 }, (req, res) => {
    const path = (req.url ?? '').split('?')[0];
    const key = `${req.method} ${path}`;
    if (key === 'GET /metrics') {
      hooks.metrics.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': hooks.metrics.registry.contentType });
          res.end(text);
        },
        () => json(res, 500, { error: 'metrics unavailable' }),
      );
      return;
    }
    if (key === 'GET /healthz') return json(res, 200, { status: 'ok' });
    if (key === 'GET /readyz') {
      const reason = hooks.notReadyReason();
      return reason === undefined ? json(res, 200, { status: 'ready' }) : json(res, 503, { status: 'not ready', reason });
    }
    const handler = hooks.routes?.[key];
    if (!handler) {
      const allowed = [...Object.keys(hooks.routes ?? {}), 'GET /metrics', 'GET /healthz', 'GET /readyz'].filter((k) => k.endsWith(` ${path}`)).map((k) => k.split(' ')[0]!);
      if (allowed.length > 0) {
        res.setHeader('allow', allowed.join(', '));
        return json(res, 405, { error: `${path} accepts ${allowed.join(', ')}` });
      }
      return json(res, 404, { error: `no admin endpoint ${key}` });
    }
    // Revoke, flush and reload change what the proxy enforces: only from this host (or a
    // `kubectl port-forward`), even when the listener is exposed for scraping.
    if (req.method !== 'GET' && !isLoopbackAddress(req.socket.remoteAddress)) {
      return json(res, 403, { error: `${key} is accepted from loopback only` });
    }
    readJson(req)
      .then((body) => handler(body))
      .then(
        ([status, body]) => json(res, status, body),
        (error: unknown) => json(res, 400, { error: (error as Error).message }),
      );
  });
}
