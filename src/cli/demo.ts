// `portcullis demo` (= `npm start`): a throwaway dev CA and SVIDs, a sample upstream, the proxy
// with the embedded PDP and an example policy, and copy-paste curl commands.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server } from 'node:http';
import { DevCa } from './dev-pki.ts';
import { createSampleUpstream } from './sample-upstream.ts';
import { loadConfig } from '../config/load.ts';
import { startInstance, type Instance } from './instance.ts';
import type { Logger } from '../telemetry/logger.ts';

export const DEMO_POLICY = `# The demo's embedded PDP policy (SPEC "Embedded PDP policy").
tiers:
  high:     { grant: true, posture: high, maxGrantTtl: 15m }
  critical: { grant: true, posture: high, intent: true, maxGrantTtl: 5m }
rules:
  - id: support-refunds
    effect: allow
    subjects: ["spiffe://example.org/ns/prod/sa/support-*"]
    actions: ["orders.refund"]
    resources: ["order:*"]
    ttl: 30s
`;

function demoConfig(proxyPort: number, adminPort: number, upstreamPort: number): string {
  return `# Written by \`portcullis demo\`; check it with: npx portcullis check --config <this file>
listen: { address: 127.0.0.1, port: ${proxyPort} }
identity:
  source: files
  certFile: orders-api.pem
  keyFile: orders-api_key.pem
  bundleFile: bundle.pem
  trustDomains: [example.org]
  allow: ["spiffe://example.org/ns/prod/**"]
upstream: { url: "http://127.0.0.1:${upstreamPort}", timeout: 10s }
routes:
  - name: health
    match: { methods: [GET], path: /healthz }
    privileged: false
  - name: order-read
    match: { methods: [GET], path: "/orders/{id}" }
    privileged: false
  - name: refund
    match: { methods: [POST], path: "/orders/{id}/refund" }
    action: orders.refund
    resource: "order:{id}"
    sensitivity: high
    cacheTtl: 10s
defaultRoute: deny
pdp: { kind: embedded, policyFile: policy.yaml, timeout: 250ms }
cache: { maxEntries: 10000, allowTtl: 30s, denyTtl: 2s }
admin: { address: 127.0.0.1, port: ${adminPort} }
`;
}

function listenOn(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    });
  });
}

async function freePort(preferred: number): Promise<number> {
  const { createServer } = await import('node:net');
  const probe = createServer();
  try {
    return await listenOn(probe as unknown as Server, preferred);
  } catch {
    return listenOn(probe as unknown as Server, 0);
  } finally {
    probe.close();
  }
}

export interface DemoRun {
  readonly dir: string;
  readonly instance: Instance;
  readonly upstream: Server;
  readonly instructions: string;
  close(): Promise<void>;
}

export async function startDemo(options: { logger?: Logger; dir?: string } = {}): Promise<DemoRun> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'portcullis-demo-'));
  const ca = await DevCa.create('example.org');
  const server = await ca.svid('/ns/prod/sa/orders-api', { dns: ['localhost'] });
  const support = await ca.svid('/ns/prod/sa/support-bot');
  const scraper = await ca.svid('/ns/dev/sa/scraper');
  const outsider = await (await DevCa.create('example.org')).svid('/ns/prod/sa/support-bot');
  const files: Record<string, string> = {
    'bundle.pem': ca.bundlePem,
    'orders-api.pem': server.certPem,
    'orders-api_key.pem': server.keyPem,
    'support-bot.pem': support.certPem,
    'support-bot_key.pem': support.keyPem,
    'scraper.pem': scraper.certPem,
    'scraper_key.pem': scraper.keyPem,
    'forged.pem': outsider.certPem,
    'forged_key.pem': outsider.keyPem,
    'policy.yaml': DEMO_POLICY,
  };
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content, { mode: name.endsWith('_key.pem') ? 0o600 : 0o644 });

  const upstream = createSampleUpstream();
  const upstreamPort = await listenOn(upstream, 0);
  const proxyPort = await freePort(8443);
  const adminPort = await freePort(9901);
  const configFile = join(dir, 'portcullis.yaml');
  writeFileSync(configFile, demoConfig(proxyPort, adminPort, upstreamPort));
  const instance = await startInstance(loadConfig(configFile), { logger: options.logger });

  const base = `https://localhost:${proxyPort}`;
  const as = (who: string) => `curl -sS --cacert ${dir}/bundle.pem --cert ${dir}/${who}.pem --key ${dir}/${who}_key.pem`;
  const instructions = [
    '',
    `Portcullis demo is running. Files (dev CA, SVIDs, config, policy): ${dir}`,
    `  proxy    ${base}   (SPIFFE ID spiffe://example.org/ns/prod/sa/orders-api)`,
    `  service  http://127.0.0.1:${upstreamPort}   (sample upstream: echoes what it receives)`,
    `  admin    http://127.0.0.1:${adminPort}/metrics`,
    '',
    'Allowed: support-bot is a valid SVID in identity.allow; the service sees who called (x-forwarded-client-cert):',
    `  ${as('support-bot')} ${base}/orders/42`,
    '',
    'Denied, 403 peer_not_allowed: a valid SVID of the trust domain, but not in identity.allow:',
    `  ${as('scraper')} ${base}/orders/42`,
    '',
    'Refused at the handshake: a certificate claiming spiffe://example.org from a CA that is not its bundle:',
    `  ${as('forged')} ${base}/orders/42`,
    '',
    'Refused at the handshake: no client certificate at all:',
    `  curl -sS --cacert ${dir}/bundle.pem ${base}/orders/42`,
    '',
    'Denied, 400 bad_path: a path trick (an encoded "/") is refused, never decoded into another route:',
    `  ${as('support-bot')} --path-as-is '${base}/orders/42%2F..%2F..%2Fadmin'`,
    '',
    'Denied, 403 no_route: nothing in the route table matches and defaultRoute is deny:',
    `  ${as('support-bot')} ${base}/admin`,
    '',
    'Privileged, 403 policy_denied: refunds need a grant and the decision path:',
    `  ${as('support-bot')} -X POST ${base}/orders/42/refund`,
    '',
    `Check the config: npm run portcullis -- check --config ${configFile}`,
    `Inspect an SVID:  npm run portcullis -- svid inspect ${dir}/support-bot.pem --bundle ${dir}/bundle.pem`,
    'Press Ctrl-C to stop.',
    '',
  ].join('\n');

  return {
    dir,
    instance,
    upstream,
    instructions,
    async close() {
      await instance.close();
      await new Promise<void>((resolve) => upstream.close(() => resolve()));
    },
  };
}
