// The admin listener (SPEC "Admin listener"): loopback by default. Issue 2 serves health,
// readiness and metrics; the decision and reload endpoints join as those features land.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Metrics } from '../telemetry/metrics.ts';
// Not `import … from 'node:http'`: an ESM import reads every export, WebSocket's lazy getter
// included, which loads Node's bundled undici (~10 MiB of RSS) at start; the CommonJS object does not.
const { createServer } = process.getBuiltinModule('node:http');

export interface AdminHooks {
  readonly metrics: Metrics;
  /** The configured admin address: POSTs must name it (or localhost) as their Host. */
  readonly address: string;
  /** Why the proxy is not ready, or undefined when it is. */
  readonly notReadyReason: () => string | undefined;
  /** Extra routes: `METHOD /path` → handler returning status and JSON body. */
  readonly routes?: Readonly<Record<string, (body: unknown) => Promise<[number, unknown]> | [number, unknown]>>;
}

const MAX_BODY = 64 * 1024;

function isLoopbackAddress(address: string | undefined): boolean {
  return address !== undefined && (address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.'));
}

const WILDCARD = new Set(['0.0.0.0', '::', '[::]']);

/** `host[:port]` of a Host header, or undefined if it is not one. */
function hostName(value: string): string | undefined {
  const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(value);
  return match?.[1]?.toLowerCase();
}

/**
 * SPEC "Admin listener": a POST must say it is JSON (a form or a `text/plain` fetch, which any web
 * page can send without a preflight, cannot), name the admin address or localhost as its Host (a
 * DNS-rebound name cannot), and carry no Origin (browsers add one to every cross-site POST).
 * Returns the refusal, or undefined when the request may go on.
 */
function browserRefusal(req: IncomingMessage, address: string): [number, string] | undefined {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') return [415, 'admin POSTs need Content-Type: application/json'];
  if (req.headers.origin !== undefined) return [403, 'admin POSTs are refused from a browser (an Origin header was sent)'];
  const host = hostName(req.headers.host ?? '');
  const named = address.toLowerCase();
  const loopbackLiteral = host !== undefined && (/^127\.\d+\.\d+\.\d+$/.test(host) || host === '[::1]');
  const ok = host !== undefined && (host === 'localhost' || host === named || host === `[${named}]` || (WILDCARD.has(named) && loopbackLiteral));
  if (!ok) return [403, `admin POSTs need a Host naming the admin address (${address}) or localhost`];
  return undefined;
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
    const refusal = req.method === 'POST' ? browserRefusal(req, hooks.address) : undefined;
    if (refusal) {
      req.resume();
      return json(res, refusal[0], { error: refusal[1] });
    }
    readJson(req)
      .then((body) => handler(body))
      .then(
        ([status, body]) => json(res, status, body),
        (error: unknown) => json(res, 400, { error: (error as Error).message }),
      );
  });
}
