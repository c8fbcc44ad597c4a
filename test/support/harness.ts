// Test harness: a real PKI generated per run, files on disk, a real upstream, and a real
// Portcullis instance on loopback; plus an undici client that presents a client SVID.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Agent, request } from 'undici';
import { DevCa, type Issued } from '../../src/cli/dev-pki.ts';
import { loadConfig } from '../../src/config/load.ts';
import { startInstance, type Instance } from '../../src/cli/instance.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { memoryAuditLog, type AuditLog } from '../../src/telemetry/audit.ts';

export { DevCa, type Issued };

export const SERVER_ID = '/ns/prod/sa/orders-api';

export interface Pki {
  readonly dir: string;
  readonly ca: DevCa;
  readonly server: Issued;
  write(name: string, content: string): string;
  cleanup(): void;
}

export async function createPki(trustDomain = 'example.org'): Promise<Pki> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-test-'));
  const ca = await DevCa.create(trustDomain);
  const server = await ca.svid(SERVER_ID, { dns: ['localhost'] });
  const write = (name: string, content: string): string => {
    const file = join(dir, name);
    writeFileSync(file, content);
    return file;
  };
  write('svid.pem', server.certPem);
  write('svid_key.pem', server.keyPem);
  write('bundle.pem', ca.bundlePem);
  write('policy.yaml', 'rules: []\n');
  return { dir, ca, server, write, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** The default upstream: echoes method, url and headers as JSON, after reading the body. */
export const echoHandler: Handler = (req, res) => {
  let bytes = 0;
  req.on('data', (chunk: Buffer) => (bytes += chunk.length));
  req.on('end', () => {
    const body = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, rawHeaders: req.rawHeaders, bytes });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(body);
  });
};

export interface Upstream {
  readonly server: Server;
  readonly url: string;
  /** Every request the service received, in order. */
  readonly received: IncomingMessage[];
  handler: Handler;
  close(): Promise<void>;
}

export async function startUpstream(handler: Handler = echoHandler): Promise<Upstream> {
  const received: IncomingMessage[] = [];
  const upstream: Upstream = {
    server: createServer((req, res) => {
      received.push(req);
      upstream.handler(req, res);
    }),
    url: '',
    received,
    handler,
    close: () =>
      new Promise<void>((resolve) => {
        upstream.server.closeAllConnections();
        upstream.server.close(() => resolve());
      }),
  };
  await new Promise<void>((resolve) => upstream.server.listen(0, '127.0.0.1', resolve));
  const address = upstream.server.address();
  (upstream as { url: string }).url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  return upstream;
}

/** A config YAML for the test PKI; `extra` is appended (routes, etc.). */
export function configYaml(pki: Pki, upstreamUrl: string, extra = ''): string {
  return `listen: { address: 127.0.0.1, port: 0 }
identity:
  certFile: svid.pem
  keyFile: svid_key.pem
  bundleFile: bundle.pem
  trustDomains: [${pki.ca.trustDomain}]
  allow: ["spiffe://${pki.ca.trustDomain}/ns/prod/**"]
upstream: { url: "${upstreamUrl}", timeout: 2s, connectTimeout: 1s }
pdp: { policyFile: policy.yaml }
admin: { address: 127.0.0.1, port: 0 }
${extra}`;
}

export const DEFAULT_ROUTES = `routes:
  - name: refund
    match: { methods: [POST], path: "/orders/{id}/refund" }
    action: orders.refund
    resource: "order:{id}"
    sensitivity: high
  - name: health
    match: { methods: [GET], path: /healthz }
    privileged: false
  - name: orders
    match: { path: "/orders/**" }
    privileged: false
  - name: upload
    match: { methods: [POST, PUT], path: /upload }
    privileged: false
`;

export async function startProxy(pki: Pki, yaml: string, options: { svidPollMs?: number; audit?: AuditLog } = {}): Promise<Instance> {
  const file = pki.write('portcullis.yaml', yaml);
  return startInstance(loadConfig(file), { logger: createLogger('silent'), svidPollMs: options.svidPollMs ?? 100, configFile: file, audit: options.audit ?? memoryAuditLog() });
}

/** An undici Agent that presents `client` and trusts `ca` (keep-alive, one connection). */
export function clientAgent(ca: string, client?: Issued, options: Agent.Options['connect'] = {}): Agent {
  return new Agent({
    connections: 1,
    connect: { ca, cert: client?.certPem, key: client?.keyPem, servername: 'localhost', ...options },
  });
}

export async function get(agent: Agent, port: number, path: string, init: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {}) {
  const response = await request(`https://localhost:${port}${path}`, {
    dispatcher: agent,
    method: (init.method ?? 'GET') as 'GET',
    headers: init.headers,
    body: init.body,
  });
  const text = await response.body.text();
  return { status: response.statusCode, headers: response.headers, text, json: () => JSON.parse(text) as Record<string, unknown> };
}

export async function metricsText(instance: Instance): Promise<string> {
  return instance.metrics.registry.metrics();
}

/** The value of one sample line (`name{labels}`) in the exposition, or 0. */
export function metricValue(text: string, sample: string): number {
  const line = text.split('\n').find((l) => l.startsWith(sample + ' '));
  return line ? Number(line.slice(sample.length + 1)) : 0;
}
