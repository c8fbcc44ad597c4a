// The cache-hit decision exactly as the microbenchmarks measure it (bench/micro/run.ts, first row)
// and as the allocation budget checks it (test/budget/allocations.test.ts): a real config, a real
// generation, real signed tokens verified once, one decision cached. One fixture, so the budget
// and the table measure the same thing.
import { generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK } from 'jose';
import { DevCa } from '../../src/cli/dev-pki.ts';
import { mintGrant, mintPosture } from '../../src/cli/mint.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { buildGeneration, type Generation, type SharedState } from '../../src/generation.ts';
import { DecisionCache } from '../../src/decision/decision-cache.ts';
import { Revocations } from '../../src/decision/revocations.ts';
import { createMetrics } from '../../src/telemetry/metrics.ts';
import type { AuditLog } from '../../src/telemetry/audit.ts';
import { verifyX509Svid } from '../../src/identity/x509-svid.ts';
import type { PeerIdentity } from '../../src/identity/peer-verifier.ts';
import type { RequestFacts } from '../../src/decision/authorizer.ts';
import { TrustBundleSet } from '../../src/identity/trust-bundle.ts';

export interface CacheHitFixture {
  readonly dir: string;
  readonly config: Config;
  readonly shared: SharedState & { readonly metrics: ReturnType<typeof createMetrics> };
  readonly generation: Generation;
  readonly peer: PeerIdentity;
  readonly issuer: { readonly privateKey: KeyObject; readonly publicKey: KeyObject };
  readonly grant: string;
  readonly posture: string;
  /** A privileged POST /orders/42/refund with both tokens: authorize(facts) is a synchronous cached allow. */
  readonly facts: RequestFacts;
  /** Removes the fixture's files. */
  close(): void;
}

/** The audit log of the microbenchmarks: records are dropped (the batched file write is measured under load, not here). */
export const nullAudit: AuditLog = { write: () => undefined, flush: async () => undefined };

export async function cacheHitFixture(): Promise<CacheHitFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-micro-'));
  const write = (name: string, text: string) => writeFileSync(join(dir, name), text);
  const ca = await DevCa.create('example.org');
  const server = await ca.svid('/ns/prod/sa/orders-api');
  const client = await ca.svid('/ns/prod/sa/support-bot');
  write('svid.pem', server.certPem);
  write('svid_key.pem', server.keyPem);
  write('bundle.pem', ca.bundlePem);
  const issuer = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  write('jwks.json', JSON.stringify({ keys: [{ ...(await exportJWK(issuer.publicKey)), kid: 'k1', alg: 'ES256' }] }));
  write('policy.yaml', 'tiers:\n  high: { grant: true, posture: high, maxGrantTtl: 15m }\nrules:\n  - { id: r, effect: allow, subjects: ["spiffe://example.org/ns/prod/sa/support-*"], actions: [orders.refund], resources: ["order:*"], ttl: 30s }\n  - { id: m, effect: allow, subjects: ["spiffe://example.org/ns/prod/sa/support-*"], actions: [mcp.tools.call], resources: ["mcp:lookup_order"], ttl: 30s }\n');
  write('portcullis.yaml', `identity: { certFile: svid.pem, keyFile: svid_key.pem, bundleFile: bundle.pem, trustDomains: [example.org], allow: ["spiffe://example.org/**"] }
upstream: { url: "http://127.0.0.1:1" }
routes:
  - { name: refund, match: { methods: [POST], path: "/orders/{id}/refund" }, action: orders.refund, resource: "order:{id}", sensitivity: high }
  - { name: mcp, match: { methods: [POST], path: /mcp }, jsonrpc: true, action: "mcp.{rpc.method}", resource: "mcp:{rpc.name}", sensitivity: high }
pdp: { policyFile: policy.yaml }
grants: { issuers: [{ issuer: "https://jit.example.org", jwksFile: jwks.json }] }
posture: { issuers: [{ issuer: "https://posture.example.org", jwksFile: jwks.json }], maxAge: 15m }
`);
  const config = loadConfig(join(dir, 'portcullis.yaml'));
  const metrics = createMetrics({ defaultMetrics: false });
  const shared = { cache: new DecisionCache(100_000, metrics), revocations: new Revocations(), metrics, audit: nullAudit, ownId: 'spiffe://example.org/ns/prod/sa/orders-api' };
  const generation = buildGeneration(1, config, shared);
  const bundles = new TrustBundleSet(new Map([['example.org', [new X509Certificate(ca.bundlePem)]]]));
  const peer: PeerIdentity = { svid: verifyX509Svid([new X509Certificate(client.certPem)], bundles) };
  const grant = await mintGrant({ key: issuer.privateKey, kid: 'k1', iss: 'https://jit.example.org', sub: peer.svid.id.uri, aud: shared.ownId, scope: 'orders.refund', ttl: '14m', resources: ['order:*'] });
  const posture = await mintPosture({ key: issuer.privateKey, kid: 'k1', iss: 'https://posture.example.org', sub: peer.svid.id.uri, trust: 'high', ttl: '14m' });
  const match = generation.routes.match('POST', '/orders/42/refund')!;
  const facts: RequestFacts = { peer, route: match.route, resource: match.resource, method: 'POST', headers: { 'x-jit-grant': grant, 'x-device-posture': posture }, requestId: 'r', path: '/orders/42/refund', peerAddress: '127.0.0.1', peerPort: 1 };
  // Warm: verify tokens and fill the decision.
  await generation.authorizer.authorize(facts);
  const hit = generation.authorizer.authorize(facts);
  if (hit instanceof Promise || !hit.allow) throw new Error('expected a synchronous cached allow');
  return { dir, config, shared, generation, peer, issuer, grant, posture, facts, close: () => rmSync(dir, { recursive: true, force: true }) };
}
