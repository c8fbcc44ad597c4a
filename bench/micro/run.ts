// Microbenchmarks of the hot path's pieces (tinybench): ns/op, and heap bytes allocated per op
// (bench/alloc/allocated.ts). Also: bytes per cached decision.
// Run: npm run bench (after the load bench), or node --expose-gc bench/micro/run.ts [--quick]
// (--expose-gc only for the bytes per cached decision, measured after a full GC).
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Bench } from 'tinybench';
import { mintGrant } from '../../src/cli/mint.ts';
import { buildGeneration } from '../../src/generation.ts';
import { DecisionCache, DecisionScopes, decisionKey } from '../../src/decision/decision-cache.ts';
import { Revocations } from '../../src/decision/revocations.ts';
import { createMetrics } from '../../src/telemetry/metrics.ts';
import { normaliseTarget } from '../../src/routing/normalise-path.ts';
import { RouteTable } from '../../src/routing/route-table.ts';
import { configSchema } from '../../src/config/schema.ts';
import { EmbeddedPdp, policySchema } from '../../src/pdp/embedded-policy.ts';
import { TokenVerifier } from '../../src/tokens/token-verifier.ts';
import { shapeGrant } from '../../src/tokens/grant.ts';
import { issuerKeys } from '../../src/tokens/key-set.ts';
import type { RequestFacts } from '../../src/decision/authorizer.ts';
import type { PdpInput } from '../../src/pdp/pdp.ts';
import { decideCalls } from '../../src/exchange/json-rpc-calls.ts';
import { cacheHitFixture } from './cache-hit.ts';
import { bytesPerCall } from '../alloc/allocated.ts';

const quick = process.argv.includes('--quick');
const gc = (globalThis as { gc?: () => void }).gc;

// The cache-hit decision of the first rows: the same fixture the allocation budget checks
// (test/budget/allocations.test.ts).
const fixture = await cacheHitFixture();
process.on('exit', () => fixture.close());
const { dir, config, shared, generation, peer, issuer, grant, posture, facts } = fixture;
const { metrics } = shared;
const mint = (jti?: string) => mintGrant({ key: issuer.privateKey, kid: 'k1', iss: 'https://jit.example.org', sub: peer.svid.id.uri, aud: shared.ownId, scope: 'orders.refund', ttl: '14m', resources: ['order:*'], jti });
// The same cache hit with 100,000 revocations held (50,000 jti and 50,000 sub entries, none
// naming this grant or peer), beside the empty store above: step 7's check is a Map lookup or
// two whatever the store holds, and must stay within the cache-hit budget (issue 12 item 7).
const held = new Revocations();
for (let i = 0; i < 50_000; i++) {
  held.revokeJti(randomUUID());
  held.revokeSub(`spiffe://example.org/ns/prod/sa/revoked-${i}`);
}
const heldGeneration = buildGeneration(1, config, { ...shared, cache: new DecisionCache(100_000, metrics), revocations: held });
await heldGeneration.authorizer.authorize(facts);
const heldHit = heldGeneration.authorizer.authorize(facts);
if (heldHit instanceof Promise || !heldHit.allow || held.size !== 100_000) throw new Error('expected a synchronous cached allow with 100,000 revocations held');

// An MCP tools/call on a jsonrpc route, as the SDK client sends it: the body is parsed (strict
// scan, then JSON.parse) and its one call decided through the same decision path, on a cache hit.
const mcpGrant = await mintGrant({ key: issuer.privateKey, kid: 'k1', iss: 'https://jit.example.org', sub: peer.svid.id.uri, aud: shared.ownId, scope: 'mcp.tools.call', ttl: '14m', resources: ['mcp:lookup_order'] });
const mcpMatch = generation.routes.match('POST', '/mcp')!;
const mcpBody = Buffer.from('{"method":"tools/call","params":{"name":"lookup_order","arguments":{"id":"42"},"_meta":{"progressToken":7}},"jsonrpc":"2.0","id":7}');
const mcpFacts = { peer, method: 'POST', headers: { 'x-jit-grant': mcpGrant, 'x-device-posture': posture, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, requestId: 'r', path: '/mcp', peerAddress: '127.0.0.1', peerPort: 1 };
const toolCall = () => decideCalls(mcpBody, generation.authorizer, mcpMatch.route, mcpMatch.resource, mcpFacts, 'r');
await toolCall();
const toolHit = toolCall();
if (toolHit instanceof Promise || !toolHit.allow) throw new Error('expected a synchronous cached allow for the tools/call');

const grants = new TokenVerifier({ shape: shapeGrant, issuers: new Map([['https://jit.example.org', issuerKeys({ issuer: 'https://jit.example.org', jwksFile: join(dir, 'jwks.json') }, 1000)]]), audience: [shared.ownId], clockSkewMs: 2000, maxTokenBytes: 8192, requiredClaims: ['exp', 'iat', 'jti', 'sub'], cacheEntries: 10 });
await grants.verify(grant, Date.now());
const freshGrants = await Promise.all(Array.from({ length: 2000 }, () => mint(randomUUID())));
let fresh = 0;

const routeConfig = configSchema.shape.routes.parse(
  Array.from({ length: 200 }, (_, i) => ({ name: `r${i}`, match: { methods: ['GET'], path: `/svc${i}/items/{id}/detail` }, privileged: false })),
);
const routes = new RouteTable(routeConfig, 'deny');
const rules = Array.from({ length: 1000 }, (_, i) => ({ id: `r${i}`, effect: 'allow', subjects: [`spiffe://example.org/ns/n${i % 10}/**`], actions: [`svc${i % 50}.op${i}`], resources: ['*'] }));
rules.push({ id: 'last', effect: 'allow', subjects: ['spiffe://example.org/**'], actions: ['orders.refund'], resources: ['order:*'] });
const pdp = new EmbeddedPdp(policySchema.parse({ rules }));
const pdpInput: PdpInput = { subject: peer.svid.id.uri, posture: undefined, action: 'orders.refund', method: 'POST', resource: 'order:42', route: 'refund', sensitivity: 'low', grant: undefined, intent: undefined, requestId: 'r', nowMs: Date.now() };

// Each request's header strings are new objects made by the HTTP parser, so nothing hashed from
// them earlier is reused: the realistic cache hit makes them afresh (their making is measured
// alone on the next line, to subtract).
const grantBytes = Buffer.from(grant, 'latin1');
const postureBytes = Buffer.from(posture, 'latin1');
const freshFacts: { -readonly [K in keyof RequestFacts]: RequestFacts[K] } = { ...facts };
const freshHeaders = () => ({ 'x-jit-grant': grantBytes.toString('latin1'), 'x-device-posture': postureBytes.toString('latin1') });

const bench = new Bench({ time: quick ? 50 : 1000, warmupTime: quick ? 10 : 200 });
bench
  .add('decision, cache hit (tokens cached, key, lookup, exp + revocation)', () => {
    generation.authorizer.authorize(facts);
  })
  .add('decision, cache hit, 100,000 revocations held (50,000 jti + 50,000 sub)', () => {
    heldGeneration.authorizer.authorize(facts);
  })
  .add('decision, cache hit, header strings fresh per request (as in the proxy)', () => {
    freshFacts.headers = freshHeaders();
    generation.authorizer.authorize(freshFacts);
  })
  .add('  making those two header strings alone (subtract)', () => {
    freshFacts.headers = freshHeaders();
  })
  .add('decision on a cache hit for a tools/call (parse + decide)', () => {
    toolCall();
  })
  .add('verified-token cache hit', () => {
    grants.verify(grant, Date.now());
  })
  .add('route match, 200 routes (last one)', () => {
    routes.match('GET', '/svc199/items/42/detail');
  })
  .add('path normalisation', () => {
    normaliseTarget('/orders//42/./refund/%7Ex?q=1', { allowPathParams: false });
  })
  .add('grant verification, cache miss (ES256)', async () => {
    await grants.verify(freshGrants[fresh++ % freshGrants.length]!, Date.now());
  })
  .add('embedded PDP, 1,000 rules', () => {
    pdp.evaluate(pdpInput);
  });
await bench.run();

// Heap bytes per op: young-generation bytes allocated over windows of n calls, counted through
// V8's GC profiler (bench/alloc/allocated.ts), so a GC inside the window no longer hides what was
// allocated; the least of 5 windows. The allocation budget (test/budget/) counts the first row so.
function heapPerOp(fn: () => unknown, n = 100_000): number {
  return bytesPerCall(fn, n);
}
const allocations: Record<string, number | undefined> = {
  'decision, cache hit (tokens cached, key, lookup, exp + revocation)': heapPerOp(() => generation.authorizer.authorize(facts), quick ? 1000 : 20_000),
  'decision, cache hit, 100,000 revocations held (50,000 jti + 50,000 sub)': heapPerOp(() => heldGeneration.authorizer.authorize(facts), quick ? 1000 : 20_000),
  'decision on a cache hit for a tools/call (parse + decide)': heapPerOp(toolCall, 1000),
  'verified-token cache hit': heapPerOp(() => grants.verify(grant, Date.now())),
  'route match, 200 routes (last one)': heapPerOp(() => routes.match('GET', '/svc199/items/42/detail')),
  'path normalisation': heapPerOp(() => normaliseTarget('/orders//42/./refund/%7Ex?q=1', { allowPathParams: false })),
  'embedded PDP, 1,000 rules': heapPerOp(() => pdp.evaluate(pdpInput)),
};

// Bytes per cached decision: fill a cache with N distinct keys, measure the heap.
async function bytesPerDecision(n: number): Promise<{ n: number; bytesPerEntry: number; rssMiB: number } | undefined> {
  if (!gc) return undefined;
  const cache = new DecisionCache(n, createMetrics({ defaultMetrics: false }));
  // One grant covers many resources: its jti string is shared by those entries, as in the proxy.
  const grantIds = Array.from({ length: Math.ceil(n / 20) }, () => randomUUID());
  const scope = new DecisionScopes().ref('refund', 'orders.refund', 'spiffe://example.org/ns/prod/sa/support-bot');
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < n; i++) {
    // Keys as the decision path builds them: a distinct resource and grant per entry.
    cache.set(decisionKey(scope, `order:${i}`, (i * 7).toString(36), 'p1', ''), { allow: true, reason: undefined, detail: 'allow rule support-refunds', route: 'refund', peer: 'spiffe://example.org/ns/prod/sa/support-bot', jti: grantIds[i % grantIds.length]! }, 60_000);
  }
  gc();
  const after = process.memoryUsage().heapUsed;
  const result = { n, bytesPerEntry: (after - before) / n, rssMiB: process.memoryUsage().rss / 2 ** 20 };
  cache.flush();
  return result;
}
const memory = [await bytesPerDecision(quick ? 1000 : 100_000), quick ? undefined : await bytesPerDecision(1_000_000)].filter(Boolean);

const lines = ['| benchmark | median ns/op | ops/s | heap bytes/op |', '|---|---:|---:|---:|'];
for (const task of bench.tasks) {
  const r = task.result as { latency?: { p50?: number }; throughput?: { mean?: number } } | undefined;
  const ns = (r?.latency?.p50 ?? NaN) * 1e6;
  const alloc = allocations[task.name];
  lines.push(`| ${task.name} | ${ns.toFixed(0)} | ${(r?.throughput?.mean ?? 0).toFixed(0)} | ${alloc === undefined ? '–' : alloc.toFixed(0)} |`);
}
for (const m of memory) lines.push(`\ncached decisions: ${m!.n} entries → ${m!.bytesPerEntry.toFixed(0)} bytes/entry (heap), process RSS ${m!.rssMiB.toFixed(0)} MiB`);
process.stdout.write(lines.join('\n') + '\n');
process.exit(0);
