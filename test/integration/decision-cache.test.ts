// The decision cache against time (SPEC "The decision, per request", steps 4 and 5): expiry and
// revocation beat a 30 s cache, concurrent misses coalesce into one PDP evaluation, every TTL
// cap holds, maxEntries holds under a flood, and a reload never serves an old-policy allow.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request, type Agent } from 'undici';
import { mintPosture } from '../../src/cli/mint.ts';
import { buildGeneration } from '../../src/generation.ts';
import { loadPolicy } from '../../src/config/load-policy.ts';
import type { Pdp } from '../../src/pdp/pdp.ts';
import type { Generation } from '../../src/server.ts';
import type { Instance } from '../../src/cli/instance.ts';
import { memoryAuditLog } from '../../src/telemetry/audit.ts';
import { clientAgent, configYaml, createPki, get, startProxy, startUpstream, type Issued, type Pki, type Upstream } from '../support/harness.ts';
import {
  admin, grantClaims, issuerKey, JIT_ISS, metric, newJti, POSTURE_ISS, recordsFor, signToken, sleep, startNamed, SUPPORT_ID, SUPPORT_WEB_ID, wideAgent,
  type GrantClaims, type IssuerKey,
} from './decision-support.ts';

const POLICY = `tiers:
  high: { grant: true, posture: high, maxGrantTtl: 15m }
rules:
  - id: support-refunds
    effect: allow
    subjects: ["spiffe://example.org/ns/prod/sa/support-*"]
    actions: ["orders.refund"]
    resources: ["order:*"]
  - id: brief-reads
    effect: allow
    actions: ["brief.read"]
    ttl: 400ms
  - id: open
    effect: allow
    actions: ["capped.read", "notes.write"]
`;

const ROUTES = `routes:
  - name: health
    match: { methods: [GET], path: /healthz }
    privileged: false
  - name: refund
    match: { methods: [POST], path: "/orders/{id}/refund" }
    action: orders.refund
    resource: "order:{id}"
    sensitivity: high
  - name: brief
    match: { methods: [POST], path: "/brief/{id}" }
    action: brief.read
    resource: "brief:{id}"
    sensitivity: low
  - name: capped
    match: { methods: [POST], path: "/capped/{id}" }
    action: capped.read
    resource: "capped:{id}"
    sensitivity: low
    cacheTtl: 400ms
  - name: denied
    match: { methods: [POST], path: "/denied/{id}" }
    action: denied.do
    resource: "denied:{id}"
    sensitivity: low
  - name: notes
    match: { methods: [POST], path: "/notes/{id}" }
    action: notes.write
    resource: "note:{id}"
    sensitivity: low
cache: { maxEntries: 10000, allowTtl: 30s, denyTtl: 400ms }
grants:
  issuers: [{ issuer: "${JIT_ISS}", jwksFile: jit-jwks.json }]
  audience: self
posture:
  issuers: [{ issuer: "${POSTURE_ISS}", jwksFile: posture-jwks.json }]
  maxAge: 5m
`;

const SMALL_ALLOW = `rules:
  - { id: notes-open, effect: allow, actions: ["notes.write"] }
`;
const SMALL_DENY = `rules:
  - { id: notes-closed, effect: deny, actions: ["notes.write"] }
`;

function smallConfig(pki: Pki, upstreamUrl: string): string {
  return configYaml(pki, upstreamUrl, `routes:
  - name: health
    match: { methods: [GET], path: /healthz }
    privileged: false
  - name: notes
    match: { methods: [POST], path: "/notes/{id}" }
    action: notes.write
    resource: "note:{id}"
    sensitivity: low
cache: { maxEntries: 50, allowTtl: 30s, denyTtl: 2s }
`).replace('policyFile: policy.yaml', 'policyFile: small-policy.yaml');
}

/** A real embedded PDP that takes its time, so concurrent requests overlap for sure. */
function slowPdp(policyFile: string, delayMs: number): Pdp {
  const real = loadPolicy(policyFile);
  return {
    kind: 'slow-embedded',
    evaluate: async (input) => {
      await sleep(delayMs);
      return real.evaluate(input);
    },
  };
}

describe('the decision cache', () => {
  let pki: Pki;
  let upstream: Upstream;
  let proxy: Instance;
  const audit = memoryAuditLog();
  let jit: IssuerKey;
  let postureKey: IssuerKey;
  let support: Issued;
  let supportWeb: Issued;
  const agents: Agent[] = [];
  let asSupport: Agent;
  let asSupportWeb: Agent;
  const built: Generation[] = [];

  const grant = (c: GrantClaims = {}): Promise<string> => signToken(grantClaims(c), { key: jit.key, kid: jit.kid });
  const posture = (sub = SUPPORT_ID): Promise<string> => mintPosture({ key: postureKey.key, kid: postureKey.kid, iss: POSTURE_ISS, sub, trust: 'high', ttl: '10m' });

  async function call(agent: Agent, path: string, tokens: { grant?: string; posture?: string } = {}, instance: Instance = proxy) {
    const headers: Record<string, string> = {};
    if (tokens.grant !== undefined) headers['x-jit-grant'] = tokens.grant;
    if (tokens.posture !== undefined) headers['x-device-posture'] = tokens.posture;
    const reply = await get(agent, instance.proxyPort, path, { method: 'POST', headers });
    return { status: reply.status, reason: reply.status === 200 ? 'allowed' : (JSON.parse(reply.text) as { reason: string }).reason };
  }
  const agentFor = (who: Issued) => {
    const agent = clientAgent(pki.ca.bundlePem, who);
    agents.push(agent);
    return agent;
  };
  const pdpCount = () => metric(proxy, 'portcullis_pdp_requests_total');

  /** Runs `body` with a generation built around `pdp` (real code: buildGeneration + useGeneration). */
  async function withPdp<T>(id: number, pdp: Pdp, body: () => Promise<T>): Promise<T> {
    const original = proxy.proxy.currentGeneration;
    const config = { ...original.config, pdp: { ...original.config.pdp, timeout: 2000 } };
    const generation = buildGeneration(id, config, proxy.shared, pdp);
    built.push(generation);
    proxy.proxy.useGeneration(generation);
    try {
      return await body();
    } finally {
      proxy.proxy.useGeneration(original);
    }
  }

  beforeAll(async () => {
    pki = await createPki();
    upstream = await startUpstream();
    [jit, postureKey] = await Promise.all([issuerKey('jit-1'), issuerKey('posture-1')]);
    pki.write('jit-jwks.json', jit.jwks);
    pki.write('posture-jwks.json', postureKey.jwks);
    pki.write('policy.yaml', POLICY);
    proxy = await startProxy(pki, configYaml(pki, upstream.url, ROUTES), { audit });
    [support, supportWeb] = await Promise.all([pki.ca.svid('/ns/prod/sa/support-bot'), pki.ca.svid('/ns/prod/sa/support-web')]);
    asSupport = agentFor(support);
    asSupportWeb = agentFor(supportWeb);
  });
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.close()));
    await proxy.close();
    await Promise.all(built.map((g) => g.upstream.close()));
    await upstream.close();
    pki.cleanup();
  });

  // Every allow before exp and every deny from exp on is deterministic; how soon after exp the
  // first poll lands depends on the machine, so a starved run (another suite hogging the CPU
  // right at exp) gets another go.
  it('grant expiry beats a 30 s cached allow to within a few milliseconds (fractional exp)', { retry: 2 }, async () => {
    const jti = newJti('expiry');
    const nowMs = Date.now();
    const expMs = nowMs + 1200;
    const g = await grant({ jti, iat: Math.floor(nowMs / 1000), exp: expMs / 1000 });
    const p = await posture();
    const fromCache = { route: 'refund', decision: 'allow', source: 'cache' };
    expect(await call(asSupport, '/orders/1/refund', { grant: g, posture: p })).toEqual({ status: 200, reason: 'allowed' });
    const cacheBefore = await metric(proxy, 'portcullis_decisions_total', fromCache);
    expect((await call(asSupport, '/orders/1/refund', { grant: g, posture: p })).status).toBe(200);
    expect(await metric(proxy, 'portcullis_decisions_total', fromCache)).toBe(cacheBefore + 1);

    // Poll over three connections from shortly before exp until the first 401.
    const pollers = [asSupport, agentFor(support), agentFor(support)];
    await Promise.all(pollers.slice(1).map((a) => get(a, proxy.proxyPort, '/healthz')));
    await sleep(expMs - 120 - Date.now());
    const deadline = expMs + 2000;
    const statuses: number[] = [];
    await Promise.all(
      pollers.map(async (agent) => {
        while (Date.now() < deadline) {
          const reply = await call(agent, '/orders/1/refund', { grant: g, posture: p });
          statuses.push(reply.status);
          if (reply.status !== 200) {
            expect(reply).toEqual({ status: 401, reason: 'grant_expired' });
            return;
          }
        }
      }),
    );
    expect(statuses).toContain(401);
    // Server-side times: every allow was decided before exp, every decision from exp on denied.
    const records = recordsFor(audit.records, jti);
    const allows = records.filter((r) => r.decision === 'allow');
    const denies = records.filter((r) => r.decision === 'deny');
    expect(allows.length).toBeGreaterThan(10);
    for (const r of allows) expect(Date.parse(r.time)).toBeLessThanOrEqual(expMs + 1);
    expect(allows.filter((r) => r.source === 'cache' && Date.parse(r.time) >= expMs - 100).length).toBeGreaterThan(0);
    const firstDeny = Math.min(...denies.map((r) => Date.parse(r.time)));
    expect(denies.every((r) => r.reason === 'grant_expired')).toBe(true);
    expect(firstDeny - expMs).toBeGreaterThanOrEqual(0);
    expect(firstDeny - expMs).toBeLessThanOrEqual(5);
  });

  describe('revocation', () => {
    it('by jti: the very next request is refused, the cached allow is purged, the counter rises', async () => {
      const jti = newJti('revoke');
      const [g, other, p] = [await grant({ jti }), await grant(), await posture()];
      expect((await call(asSupport, '/orders/2/refund', { grant: g, posture: p })).status).toBe(200);
      expect((await call(asSupport, '/orders/3/refund', { grant: g, posture: p })).status).toBe(200);
      expect((await call(asSupport, '/orders/2/refund', { grant: other, posture: p })).status).toBe(200);
      const entriesBefore = (await admin(proxy, 'GET', '/admin/cache')).json.entries as number;
      const revocationsBefore = await metric(proxy, 'portcullis_revocations_total');
      const revoked = await admin(proxy, 'POST', '/admin/revoke', { jti });
      expect(revoked).toEqual({ status: 200, json: { revoked: { jti }, purged_decisions: 2, cut_exchanges: 0, closed_tunnels: 0 } });
      expect((await admin(proxy, 'GET', '/admin/cache')).json.entries).toBe(entriesBefore - 2);
      expect(await metric(proxy, 'portcullis_revocations_total')).toBe(revocationsBefore + 1);
      expect(await call(asSupport, '/orders/2/refund', { grant: g, posture: p })).toEqual({ status: 403, reason: 'grant_revoked' });
      expect(await call(asSupport, '/orders/4/refund', { grant: g, posture: p })).toEqual({ status: 403, reason: 'grant_revoked' });
      // Another grant of the same peer is untouched.
      expect((await call(asSupport, '/orders/2/refund', { grant: other, posture: p })).status).toBe(200);
    });

    it('by sub: every grant issued so far is refused at once; one issued afterwards (beyond clockSkew) works', async () => {
      const [g, p] = [await grant({ sub: SUPPORT_WEB_ID }), await posture(SUPPORT_WEB_ID)];
      expect((await call(asSupportWeb, '/orders/5/refund', { grant: g, posture: p })).status).toBe(200);
      expect((await call(asSupportWeb, '/orders/5/refund', { grant: g, posture: p })).status).toBe(200);
      const entriesBefore = (await admin(proxy, 'GET', '/admin/cache')).json.entries as number;
      const revocationsBefore = await metric(proxy, 'portcullis_revocations_total');
      const revokedAt = Date.now();
      const revoked = await admin(proxy, 'POST', '/admin/revoke', { sub: SUPPORT_WEB_ID });
      expect(revoked.status).toBe(200);
      expect(revoked.json.purged_decisions).toBe(1);
      expect((await admin(proxy, 'GET', '/admin/cache')).json.entries).toBe(entriesBefore - 1);
      expect(await metric(proxy, 'portcullis_revocations_total')).toBe(revocationsBefore + 1);
      expect(await call(asSupportWeb, '/orders/5/refund', { grant: g, posture: p })).toEqual({ status: 403, reason: 'grant_revoked' });
      // Other peers are untouched.
      expect((await call(asSupport, '/orders/5/refund', { grant: await grant(), posture: await posture() })).status).toBe(200);
      // `iat` has one-second resolution, and an issuer's clock may run clockSkew (2 s) ahead: a grant
      // is "issued after" once its iat second is past the revocation plus clockSkew.
      await sleep(Math.floor(revokedAt / 1000) * 1000 + 1000 + 2000 - Date.now() + 10);
      const fresh = await grant({ sub: SUPPORT_WEB_ID });
      expect((await call(asSupportWeb, '/orders/5/refund', { grant: fresh, posture: p })).status).toBe(200);
      expect(await call(asSupportWeb, '/orders/6/refund', { grant: g, posture: p })).toEqual({ status: 403, reason: 'grant_revoked' });
    });

    it('jti and sub together revoke both; a bad body or method is refused with a clear message', async () => {
      const jti = newJti('both');
      const [g, p] = [await grant({ jti }), await posture()];
      const [gw, pw] = [await grant({ sub: SUPPORT_WEB_ID }), await posture(SUPPORT_WEB_ID)];
      expect((await call(asSupport, '/orders/8/refund', { grant: g, posture: p })).status).toBe(200);
      expect((await call(asSupportWeb, '/orders/8/refund', { grant: gw, posture: pw })).status).toBe(200);
      const both = await admin(proxy, 'POST', '/admin/revoke', { jti, sub: SUPPORT_WEB_ID });
      expect(both).toMatchObject({ status: 200, json: { revoked: { jti, sub: SUPPORT_WEB_ID }, closed_tunnels: 0 } });
      // At least these two requests' decisions (earlier tests may have left more of that peer's).
      expect(both.json.purged_decisions).toBeGreaterThanOrEqual(2);
      expect(await call(asSupport, '/orders/8/refund', { grant: g, posture: p })).toEqual({ status: 403, reason: 'grant_revoked' });
      expect(await call(asSupportWeb, '/orders/8/refund', { grant: gw, posture: pw })).toEqual({ status: 403, reason: 'grant_revoked' });
      expect(await admin(proxy, 'POST', '/admin/revoke', { jti: 42 })).toEqual({ status: 400, json: { error: 'jti: expected a non-empty string' } });
      expect(await admin(proxy, 'POST', '/admin/revoke', { jti: 'x', sub: 'not-spiffe' })).toMatchObject({ status: 400, json: { error: expect.stringMatching(/^sub: /) } });
      expect(await admin(proxy, 'POST', '/admin/revoke', { jtI: 'x' })).toMatchObject({ status: 400 });
      const notJson = await request(`http://127.0.0.1:${proxy.adminPort}/admin/revoke`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: 'not json' });
      expect([notJson.statusCode, await notJson.body.json()]).toEqual([400, { error: 'the body is not valid JSON' }]);
      const wrongMethod = await request(`http://127.0.0.1:${proxy.adminPort}/admin/revoke`);
      expect([wrongMethod.statusCode, wrongMethod.headers.allow, await wrongMethod.body.json()]).toEqual([405, 'POST', { error: '/admin/revoke accepts POST' }]);
    });

    it('a revocation that lands while the PDP is deciding refuses that request too, and caches nothing', async () => {
      await withPdp(400, slowPdp(join(pki.dir, 'policy.yaml'), 150), async () => {
        const jti = newJti('inflight-revoke');
        const [g, p] = [await grant({ jti }), await posture()];
        const pending = call(asSupport, '/orders/7/refund', { grant: g, posture: p });
        await sleep(50);
        expect((await admin(proxy, 'POST', '/admin/revoke', { jti })).status).toBe(200);
        expect(await pending).toEqual({ status: 403, reason: 'grant_revoked' });
        expect(await call(asSupport, '/orders/7/refund', { grant: g, posture: p })).toEqual({ status: 403, reason: 'grant_revoked' });
      });
    });
  });

  it('40 concurrent identical misses make one PDP evaluation', async () => {
    const wide = await wideAgent(pki.ca.bundlePem, support, 40, proxy.proxyPort);
    agents.push(wide);
    await withPdp(500, slowPdp(join(pki.dir, 'policy.yaml'), 150), async () => {
      const [g, p] = [await grant(), await posture()];
      // Warm the token caches of this generation on another resource.
      expect((await call(wide, '/orders/600/refund', { grant: g, posture: p })).status).toBe(200);
      const labels = (source: string) => ({ route: 'refund', decision: 'allow', source });
      const [pdpBefore, viaPdpBefore, coalescedBefore, okBefore] = [await pdpCount(), await metric(proxy, 'portcullis_decisions_total', labels('pdp')), await metric(proxy, 'portcullis_decisions_total', labels('coalesced')), await metric(proxy, 'portcullis_pdp_requests_total', { outcome: 'allow' })];
      const replies = await Promise.all(Array.from({ length: 40 }, () => call(wide, '/orders/601/refund', { grant: g, posture: p })));
      expect(replies.every((r) => r.status === 200)).toBe(true);
      expect(await pdpCount()).toBe(pdpBefore + 1);
      expect(await metric(proxy, 'portcullis_pdp_requests_total', { outcome: 'allow' })).toBe(okBefore + 1);
      expect(await metric(proxy, 'portcullis_decisions_total', labels('pdp'))).toBe(viaPdpBefore + 1);
      expect(await metric(proxy, 'portcullis_decisions_total', labels('coalesced'))).toBe(coalescedBefore + 39);
    });
  });

  describe('TTL caps', () => {
    async function expectCachedFor(path: string, tokens: { grant?: string; posture?: string }, status: number): Promise<void> {
      const before = await pdpCount();
      expect((await call(asSupport, path, tokens)).status).toBe(status);
      expect((await call(asSupport, path, tokens)).status).toBe(status);
      expect(await pdpCount()).toBe(before + 1);
      await sleep(550);
      expect((await call(asSupport, path, tokens)).status).toBe(status);
      expect(await pdpCount()).toBe(before + 2);
    }

    it('a rule ttl (400 ms) shorter than allowTtl caps the cached allow', async () => {
      await expectCachedFor('/brief/1', {}, 200);
    });
    it('a route cacheTtl (400 ms) caps the cached allow', async () => {
      await expectCachedFor('/capped/1', {}, 200);
      const routes = (await admin(proxy, 'GET', '/admin/cache')).json.routes as { route: string; effectiveAllowTtlMs: number }[];
      expect(routes.find((r) => r.route === 'capped')?.effectiveAllowTtlMs).toBe(400);
      expect(routes.find((r) => r.route === 'notes')?.effectiveAllowTtlMs).toBe(30_000);
    });
    it('denyTtl (400 ms) caps a cached deny', async () => {
      await expectCachedFor('/denied/1', {}, 403);
    });
    it("the grant's exp caps the cached allow: once the grant has expired there is nothing left to purge", async () => {
      const jti = newJti('exp-cap');
      const nowMs = Date.now();
      const short = await grant({ jti, scope: 'notes.write', iat: Math.floor(nowMs / 1000), exp: (nowMs + 500) / 1000 });
      const before = await pdpCount();
      expect((await call(asSupport, '/notes/1', { grant: short })).status).toBe(200);
      expect((await call(asSupport, '/notes/1', { grant: short })).status).toBe(200);
      expect(await pdpCount()).toBe(before + 1);
      await sleep(nowMs + 550 - Date.now());
      expect(await call(asSupport, '/notes/1', { grant: short })).toEqual({ status: 401, reason: 'grant_expired' });
      // allowTtl is 30 s: only the exp cap can have ended the entry already.
      expect((await admin(proxy, 'POST', '/admin/revoke', { jti })).json.purged_decisions).toBe(0);
    });
  });

  it('a grant re-issued with the same jti is decided afresh, never on the cached allow of the first', async () => {
    const jti = newJti('reused');
    const now = Math.floor(Date.now() / 1000);
    const p = await posture();
    const proper = await grant({ jti, iat: now, exp: now + 600 });
    const tooLong = await grant({ jti, iat: now, exp: now + 3600 });
    expect((await call(asSupport, '/orders/30/refund', { grant: proper, posture: p })).status).toBe(200);
    expect((await call(asSupport, '/orders/30/refund', { grant: proper, posture: p })).status).toBe(200);
    expect(await call(asSupport, '/orders/30/refund', { grant: tooLong, posture: p })).toEqual({ status: 403, reason: 'grant_ttl_too_long' });
  });

  describe('a small instance (maxEntries 50) that reloads its policy', () => {
    let small: Instance;
    let smallAudit: ReturnType<typeof memoryAuditLog>;
    let client: Agent;
    let smallBuilt: Generation | undefined;

    beforeAll(async () => {
      pki.write('small-policy.yaml', SMALL_ALLOW);
      ({ instance: small, audit: smallAudit } = await startNamed(pki, 'small.yaml', smallConfig(pki, upstream.url)));
      client = await wideAgent(pki.ca.bundlePem, support, 10, small.proxyPort);
      agents.push(client);
    });
    afterAll(async () => {
      await small.close();
      await smallBuilt?.upstream.close();
    });

    it('holds maxEntries under a flood of 300 distinct keys, counting evictions', async () => {
      const evictionsBefore = await metric(small, 'portcullis_cache_evictions_total');
      for (let batch = 0; batch < 30; batch++) {
        const replies = await Promise.all(Array.from({ length: 10 }, (_, i) => call(client, `/notes/flood-${batch * 10 + i}`, {}, small)));
        expect(replies.every((r) => r.status === 200)).toBe(true);
      }
      const stats = (await admin(small, 'GET', '/admin/cache')).json;
      expect(stats.entries).toBeLessThanOrEqual(50);
      expect(stats.maxEntries).toBe(50);
      expect(await metric(small, 'portcullis_cache_evictions_total')).toBeGreaterThanOrEqual(evictionsBefore + 250);
      expect(await metric(small, 'portcullis_cache_entries')).toBeLessThanOrEqual(50);
    });

    it('a reload never serves an allow decided under the old policy', async () => {
      const policyFile = join(pki.dir, 'small-policy.yaml');
      expect((await call(client, '/notes/r1', {}, small)).status).toBe(200);
      expect((await call(client, '/notes/r1', {}, small)).status).toBe(200); // cached for 30 s
      writeFileSync(policyFile, SMALL_DENY);
      expect(small.reload()).toMatchObject({ ok: true });
      expect(await call(client, '/notes/r1', {}, small)).toEqual({ status: 403, reason: 'policy_denied' });
      // And back, through the admin API.
      writeFileSync(policyFile, SMALL_ALLOW);
      expect((await admin(small, 'POST', '/admin/reload')).status).toBe(200);
      expect((await call(client, '/notes/r1', {}, small)).status).toBe(200);
      const last = smallAudit.records.at(-1)!;
      expect(last).toMatchObject({ resource: 'note:r1', decision: 'allow', source: 'pdp' });
    });

    it('an allow still being decided under the old policy when the reload lands is never served afterwards', async () => {
      const policyFile = join(pki.dir, 'small-policy.yaml');
      const original = small.proxy.currentGeneration;
      smallBuilt = buildGeneration(700, original.config, small.shared, slowPdp(policyFile, 150));
      small.proxy.useGeneration(smallBuilt);
      const pending = call(client, '/notes/r2', {}, small);
      await sleep(50);
      writeFileSync(policyFile, SMALL_DENY);
      expect(small.reload()).toMatchObject({ ok: true });
      expect(await call(client, '/notes/r2', {}, small)).toEqual({ status: 403, reason: 'policy_denied' });
      // The request that started before the reload finishes on the generation it started with …
      expect((await pending).status).toBe(200);
      // … and its allow, cached after the reload's flush, is never served under the new policy.
      expect(await call(client, '/notes/r2', {}, small)).toEqual({ status: 403, reason: 'policy_denied' });
      writeFileSync(policyFile, SMALL_ALLOW);
    });
  });
});
