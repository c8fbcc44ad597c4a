// `portcullis demo` (= `npm start`): a throwaway dev CA and SVIDs, a sample upstream, the proxy
// with the embedded PDP and an example policy, and copy-paste curl commands.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server } from 'node:http';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { exportJWK } from 'jose';
import { mintGrant, mintPosture } from './mint.ts';
import { DevCa } from './dev-pki.ts';
import { createSampleUpstream } from './sample-upstream.ts';
import { loadConfig } from '../config/load.ts';
import { startInstance, type Instance } from './instance.ts';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));
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

const JIT_ISSUER = 'https://jit.example.org';
const POSTURE_ISSUER = 'https://posture.example.org';
const OWN_ID = 'spiffe://example.org/ns/prod/sa/orders-api';
const SUPPORT_ID = 'spiffe://example.org/ns/prod/sa/support-bot';
const BILLING_ID = 'spiffe://example.org/ns/prod/sa/billing';

async function issuerKeyPair(kid: string): Promise<{ keyPem: string; key: KeyObject; jwks: string }> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  return { key: privateKey, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), jwks: JSON.stringify({ keys: [jwk] }, null, 2) + '\n' };
}

function demoConfig(proxyPort: number, adminPort: number, upstreamPort: number): string {
  return `# Written by \`portcullis demo\`; check it with: npm run portcullis -- check --config <this file>
listen: { address: 127.0.0.1, port: ${proxyPort}, protocols: [h2, http/1.1] }   # ALPN: HTTP/2 and HTTP/1.1 on one port
identity:
  source: files
  certFile: orders-api.pem
  keyFile: orders-api_key.pem
  bundleFile: bundle.pem
  trustDomains: [example.org]
  allow: ["spiffe://example.org/ns/prod/**"]
upstream: { url: "http://127.0.0.1:${upstreamPort}", protocol: http1, timeout: 10s }   # HTTP/2 requests are translated
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
  - name: refund-events        # server-sent events about a refund: privileged like the refund itself
    match: { methods: [GET], path: "/orders/{id}/refund/events" }
    action: orders.refund
    resource: "order:{id}"
    sensitivity: high
defaultRoute: deny
pdp: { kind: embedded, policyFile: policy.yaml, timeout: 250ms }
cache: { maxEntries: 10000, allowTtl: 30s, denyTtl: 2s }
grants:
  header: x-jit-grant
  issuers: [{ issuer: "${JIT_ISSUER}", jwksFile: jit-jwks.json }]
  audience: self
posture:
  header: x-device-posture
  issuers: [{ issuer: "${POSTURE_ISSUER}", jwksFile: posture-jwks.json }]
  maxAge: 30m
admin: { address: 127.0.0.1, port: ${adminPort} }
audit: { file: audit.log }
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

/** The preferred port if it is free, else one the kernel picks. */
export async function freePort(preferred: number): Promise<number> {
  const { createServer } = await import('node:net');
  for (const port of [preferred, 0]) {
    const probe = createServer();
    try {
      return await listenOn(probe as unknown as Server, port);
    } catch {
      // Taken: try the next candidate.
    } finally {
      probe.close(() => undefined);
    }
  }
  throw new Error('no free port on 127.0.0.1');
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
  const billing = await ca.svid('/ns/prod/sa/billing');
  const jit = await issuerKeyPair('jit-1');
  const posture = await issuerKeyPair('posture-1');
  const grant = (sub: string, scope: string, ttl: string, extra: { jti?: string } = {}) =>
    mintGrant({ key: jit.key, kid: 'jit-1', iss: JIT_ISSUER, sub, aud: OWN_ID, scope, ttl, resources: ['order:*'], approver: 'alice@example.org', justification: 'INC-4242 refund for a double charge', ...extra });
  const supportGrant = await grant(SUPPORT_ID, 'orders.refund', '15m');
  const tampered = supportGrant.slice(0, supportGrant.lastIndexOf('.') + 1) + 'A'.repeat(86);
  const headers: Record<string, string> = {
    'grant.header': `x-jit-grant: ${supportGrant}`,
    'grant-revocable.header': `x-jit-grant: ${await grant(SUPPORT_ID, 'orders.refund', '15m', { jti: 'demo-revocable-grant' })}`,
    'grant-read-only.header': `x-jit-grant: ${await grant(SUPPORT_ID, 'orders.read', '15m')}`,
    'grant-too-long.header': `x-jit-grant: ${await grant(SUPPORT_ID, 'orders.refund', '1h')}`,
    'grant-tampered.header': `x-jit-grant: ${tampered}`,
    'billing-grant.header': `x-jit-grant: ${await grant(BILLING_ID, 'orders.refund', '15m')}`,
    'posture.header': `x-device-posture: ${await mintPosture({ key: posture.key, kid: 'posture-1', iss: POSTURE_ISSUER, sub: SUPPORT_ID, trust: 'high', ttl: '30m' })}`,
    'posture-low.header': `x-device-posture: ${await mintPosture({ key: posture.key, kid: 'posture-1', iss: POSTURE_ISSUER, sub: SUPPORT_ID, trust: 'low', ttl: '30m' })}`,
    'billing-posture.header': `x-device-posture: ${await mintPosture({ key: posture.key, kid: 'posture-1', iss: POSTURE_ISSUER, sub: BILLING_ID, trust: 'high', ttl: '30m' })}`,
  };
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
    'billing.pem': billing.certPem,
    'billing_key.pem': billing.keyPem,
    'jit-jwks.json': jit.jwks,
    'jit-issuer_key.pem': jit.keyPem,
    'posture-jwks.json': posture.jwks,
    'posture-issuer_key.pem': posture.keyPem,
    'policy.yaml': DEMO_POLICY,
    ...Object.fromEntries(Object.entries(headers).map(([name, line]) => [name, `${line}\n`])),
    'mint-grant.sh': `#!/bin/sh\n# Mints a fresh grant for support-bot: ./mint-grant.sh 5s\nexec "${process.execPath}" "${MAIN}" grant mint --key "${dir}/jit-issuer_key.pem" --kid jit-1 --iss ${JIT_ISSUER} --sub ${SUPPORT_ID} --aud ${OWN_ID} --scope orders.refund --resources 'order:*' --ttl "\${1:-5m}"\n`,
  };
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content, { mode: name.endsWith('_key.pem') ? 0o600 : name.endsWith('.sh') ? 0o755 : 0o644 });

  const upstream = createSampleUpstream();
  const upstreamPort = await listenOn(upstream, 0);
  const proxyPort = await freePort(8443);
  const adminPort = await freePort(9901);
  const configFile = join(dir, 'portcullis.yaml');
  writeFileSync(configFile, demoConfig(proxyPort, adminPort, upstreamPort));
  const instance = await startInstance(loadConfig(configFile), { logger: options.logger });

  const base = `https://localhost:${proxyPort}`;
  // `-w` shows the status after the body; curl keeps the last -w, so loops below can set their own.
  const client = (who: string) => `--cacert ${dir}/bundle.pem --cert ${dir}/${who}.pem --key ${dir}/${who}_key.pem`;
  // HTTP/1.1 said explicitly: curl would pick h2 by ALPN now that the listener offers it.
  const as = (who: string) => `curl --http1.1 -sS -w '\\n→ HTTP %{http_code}\\n' ${client(who)}`;
  const overH2 = (who: string) => `curl --http2 -sS -w '\\n→ HTTP %{http_version} %{http_code}\\n' ${client(who)}`;
  // -N: each event is printed as it arrives; -w still prints when the cut ends the transfer.
  const stream = (flag: string) =>
    `G=$(${dir}/mint-grant.sh 5s); curl ${flag}-sS -N -w '\\n→ HTTP %{http_version} %{http_code}, stream ended after %{time_total} s\\n' ${client('support-bot')} -H "x-jit-grant: $G" -H @${dir}/posture.header ${base}/orders/42/refund/events`;
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
    'Refused at the handshake, so no HTTP status (curl reports "Connection reset by peer" or "Empty reply from server"): a certificate claiming spiffe://example.org from a CA that is not its bundle:',
    `  ${as('forged')} ${base}/orders/42`,
    '',
    'Refused at the handshake, so no HTTP status (curl reports "Connection reset by peer" or "Empty reply from server"): no client certificate at all:',
    `  curl -sS -w '\\n→ HTTP %{http_code}\\n' --cacert ${dir}/bundle.pem ${base}/orders/42`,
    '',
    'Denied, 400 bad_path: a path trick (an encoded "/") is refused, never decoded into another route:',
    `  ${as('support-bot')} --path-as-is '${base}/orders/42%2F..%2F..%2Fadmin'`,
    '',
    'Denied, 403 no_route: nothing in the route table matches and defaultRoute is deny:',
    `  ${as('support-bot')} ${base}/admin`,
    '',
    'Privileged route POST /orders/{id}/refund (sensitivity high: needs a grant, posture "high", grant lifetime <= 15m).',
    'Allowed: a grant for orders.refund on order:* plus a fresh posture assertion (the service sees x-jit-grant-id):',
    `  ${as('support-bot')} -X POST -H @${dir}/grant.header -H @${dir}/posture.header ${base}/orders/42/refund`,
    '',
    'Denied, 401 grant_required: no grant at all:',
    `  ${as('support-bot')} -X POST -H @${dir}/posture.header ${base}/orders/42/refund`,
    '',
    'Denied, 401 grant_invalid: the same grant with its signature changed:',
    `  ${as('support-bot')} -X POST -H @${dir}/grant-tampered.header -H @${dir}/posture.header ${base}/orders/42/refund`,
    '',
    "Denied, 403 grant_subject_mismatch: billing replays support-bot's grant:",
    `  ${as('billing')} -X POST -H @${dir}/grant.header -H @${dir}/billing-posture.header ${base}/orders/42/refund`,
    '',
    'Denied, 403 policy_denied: billing has its own grant, but no policy rule lets billing refund:',
    `  ${as('billing')} -X POST -H @${dir}/billing-grant.header -H @${dir}/billing-posture.header ${base}/orders/42/refund`,
    '',
    'Denied, 403 grant_scope: a grant for orders.read only:',
    `  ${as('support-bot')} -X POST -H @${dir}/grant-read-only.header -H @${dir}/posture.header ${base}/orders/42/refund`,
    '',
    'Denied, 403 grant_ttl_too_long: a 1h grant where the high tier allows 15m:',
    `  ${as('support-bot')} -X POST -H @${dir}/grant-too-long.header -H @${dir}/posture.header ${base}/orders/42/refund`,
    '',
    'Denied, 401 posture_required and 403 posture_insufficient: no posture, then posture "low":',
    `  ${as('support-bot')} -X POST -H @${dir}/grant.header ${base}/orders/42/refund`,
    `  ${as('support-bot')} -X POST -H @${dir}/grant.header -H @${dir}/posture-low.header ${base}/orders/42/refund`,
    '',
    'Revoked, 403 grant_revoked: allowed, then revoked on the admin API, then refused on the very next request:',
    `  ${as('support-bot')} -X POST -H @${dir}/grant-revocable.header -H @${dir}/posture.header ${base}/orders/7/refund`,
    `  curl -sS -w '\\n→ HTTP %{http_code}\\n' -X POST -H 'content-type: application/json' http://127.0.0.1:${adminPort}/admin/revoke -d '{"jti":"demo-revocable-grant"}'`,
    `  ${as('support-bot')} -X POST -H @${dir}/grant-revocable.header -H @${dir}/posture.header ${base}/orders/7/refund`,
    '',
    'A grant expiring while you watch: a fresh 5-second grant, used once a second; prints one status per call (200 … then 401, reason grant_expired):',
    `  G=$(${dir}/mint-grant.sh 5s); for i in 1 2 3 4 5 6 7; do curl -sS ${client('support-bot')} -o /dev/null -w "%{http_code} " -X POST -H "x-jit-grant: $G" -H @${dir}/posture.header ${base}/orders/42/refund; sleep 1; done; echo`,
    '',
    'HTTP/2 on the same port (ALPN h2), the same checks; the service is still spoken to in HTTP/1.1 (upstream.protocol: http1), so its answer says "http_version": "1.1":',
    `  ${overH2('support-bot')} ${base}/orders/42`,
    '',
    'Denied over HTTP/2, 403 policy_denied: the same decision and the same JSON refusal as over HTTP/1.1:',
    `  ${overH2('billing')} -X POST -H @${dir}/billing-grant.header -H @${dir}/billing-posture.header ${base}/orders/42/refund`,
    '',
    "A stream cut when its grant expires: server-sent events on GET /orders/{id}/refund/events (privileged, like the refund) with a fresh 5-second grant. An event arrives every 500 ms, then the stream ends at the grant's exp. Over HTTP/1.1 the connection closes without the final chunk (curl: (18) transfer closed); over HTTP/2 the stream is reset (curl: (92) … CANCEL):",
    `  ${stream('--http1.1 ')}`,
    `  ${stream('--http2 ')}`,
    '',
    `Decisions and stream cuts land in the audit log: tail -f ${dir}/audit.log   (cache hits and misses: curl -s http://127.0.0.1:${adminPort}/admin/cache)`,
    'The pre-minted grants live 15 minutes; run `npm start` again for fresh ones.',
    '',
    `Check the config: npm run portcullis -- check --config ${configFile}`,
    `Inspect an SVID:  npm run portcullis -- svid inspect ${dir}/support-bot.pem --bundle ${dir}/bundle.pem`,
    'Press Ctrl-C to stop (the files above are deleted then).',
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
      // The dev CA and SVID keys were throwaway: do not leave them behind.
      if (!options.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
