// Shadow mode (SPEC step 8, issue 14): a `mode: shadow` route decides exactly as an enforce one
// (tokens, tiers, cache, PDP, audit) but forwards what it would deny, counted by route and reason
// in portcullis_shadow_denials_total. Real mTLS peers, real signed tokens, the embedded PDP, a
// real upstream; the same policy behind an enforce route still refuses; peer, path and route
// refusals are never shadowed; a reload moves a route between modes.
import { connect as h2connect } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from 'undici';
import { mintPosture } from '../../src/cli/mint.ts';
import type { Instance } from '../../src/cli/instance.ts';
import { memoryAuditLog } from '../../src/telemetry/audit.ts';
import { clientAgent, configYaml, createPki, get, startProxy, startUpstream, type Pki, type Upstream } from '../support/harness.ts';
import { admin, grantClaims, issuerKey, JIT_ISS, metric, newJti, POSTURE_ISS, signToken, SUPPORT_ID, type GrantClaims, type IssuerKey } from './decision-support.ts';

const POLICY = `tiers:
  high:     { grant: true, posture: high, maxGrantTtl: 15m }
  critical: { grant: true, posture: high, intent: true, maxGrantTtl: 5m }
rules:
  - id: support-refunds
    effect: allow
    subjects: ["spiffe://example.org/ns/prod/sa/support-*"]
    actions: ["orders.refund", "orders.void"]
    resources: ["order:*"]
  - id: block-order-13
    effect: deny
    actions: ["orders.*"]
    resources: ["order:13"]
`;

const routes = (mode: 'shadow' | 'enforce') => `routes:
  - name: refund-shadow
    match: { methods: [POST], path: "/shadow/orders/{id}/refund" }
    action: orders.refund
    resource: "order:{id}"
    sensitivity: high
    mode: ${mode}
  - name: void-shadow
    match: { methods: [POST], path: "/shadow/orders/{id}/void" }
    action: orders.void
    resource: "order:{id}"
    sensitivity: critical
    mode: shadow
  - name: refund
    match: { methods: [POST], path: "/orders/{id}/refund" }
    action: orders.refund
    resource: "order:{id}"
    sensitivity: high
cache: { maxEntries: 1000, allowTtl: 30s, denyTtl: 30s }
grants:
  issuers: [{ issuer: "${JIT_ISS}", jwksFile: jit-jwks.json }]
posture:
  issuers: [{ issuer: "${POSTURE_ISS}", jwksFile: posture-jwks.json }]
  maxAge: 60s
`;

interface Seen {
  headers: Record<string, string>;
  rawHeaders: string[];
}

describe('mode: shadow', () => {
  let pki: Pki;
  let upstream: Upstream;
  let proxy: Instance;
  const audit = memoryAuditLog();
  let jit: IssuerKey;
  let postureKey: IssuerKey;
  let asSupport: Agent;
  let asOutsider: Agent;
  let support: Awaited<ReturnType<Pki['ca']['svid']>>;

  const grant = (c: GrantClaims = {}): Promise<string> => signToken(grantClaims(c), { key: jit.key, kid: jit.kid });
  const posture = (trust = 'high'): Promise<string> => mintPosture({ key: postureKey.key, kid: postureKey.kid, iss: POSTURE_ISS, sub: SUPPORT_ID, trust, ttl: '10m' });
  const shadowCount = (route: string, reason: string) => metric(proxy, 'portcullis_shadow_denials_total', { route, reason });

  async function call(agent: Agent, path: string, tokens: { grant?: string; posture?: string; intent?: string; requestId?: string } = {}) {
    const headers: Record<string, string> = {};
    if (tokens.grant !== undefined) headers['x-jit-grant'] = tokens.grant;
    if (tokens.posture !== undefined) headers['x-device-posture'] = tokens.posture;
    if (tokens.intent !== undefined) headers['x-intent'] = tokens.intent;
    if (tokens.requestId !== undefined) headers['x-request-id'] = tokens.requestId;
    return get(agent, proxy.proxyPort, path, { method: 'POST', headers });
  }

  beforeAll(async () => {
    pki = await createPki();
    upstream = await startUpstream();
    [jit, postureKey] = await Promise.all([issuerKey('jit-1'), issuerKey('posture-1')]);
    pki.write('jit-jwks.json', jit.jwks);
    pki.write('posture-jwks.json', postureKey.jwks);
    pki.write('policy.yaml', POLICY);
    proxy = await startProxy(pki, configYaml(pki, upstream.url, routes('shadow')), { audit });
    support = await pki.ca.svid('/ns/prod/sa/support-bot');
    asSupport = clientAgent(pki.ca.bundlePem, support);
    asOutsider = clientAgent(pki.ca.bundlePem, await pki.ca.svid('/ns/dev/sa/scraper'));
  });
  afterAll(async () => {
    await asSupport.close();
    await asOutsider.close();
    await proxy.close();
    await upstream.close();
    pki.cleanup();
  });

  // Each kind of would-be denial: [reason, path, tokens, whether the grant is named to the service].
  const now = () => Math.floor(Date.now() / 1000);
  const kinds: [string, string, () => Promise<{ grant?: string; posture?: string; intent?: string }>, boolean][] = [
    ['grant_required', '/shadow/orders/1/refund', async () => ({ posture: await posture() }), false],
    ['grant_invalid', '/shadow/orders/1/refund', async () => ({ grant: 'not-a-jwt', posture: await posture() }), false],
    ['grant_expired', '/shadow/orders/1/refund', async () => ({ grant: await grant({ iat: now() - 120, exp: now() - 60 }), posture: await posture() }), false],
    ['grant_scope', '/shadow/orders/1/refund', async () => ({ grant: await grant({ scope: 'orders.void' }), posture: await posture() }), false],
    ['grant_ttl_too_long', '/shadow/orders/1/refund', async () => ({ grant: await grant({ exp: now() + 3600 }), posture: await posture() }), false],
    ['posture_required', '/shadow/orders/1/refund', async () => ({ grant: await grant() }), true],
    ['posture_insufficient', '/shadow/orders/1/refund', async () => ({ grant: await grant(), posture: await posture('medium') }), true],
    ['intent_required', '/shadow/orders/2/void', async () => ({ grant: await grant({ scope: 'orders.void', exp: now() + 120 }), posture: await posture() }), true],
    ['intent_mismatch', '/shadow/orders/2/refund', async () => ({ grant: await grant({ intent: 'INC-1' }), posture: await posture(), intent: 'INC-2' }), true],
    ['policy_denied', '/shadow/orders/13/refund', async () => ({ grant: await grant(), posture: await posture() }), true],
  ];

  it.each(kinds)('forwards a would-be %s, counts it by route and reason, audits it as a shadow deny', async (reason, path, tokens, namesGrant) => {
    const route = path.includes('/void') ? 'void-shadow' : 'refund-shadow';
    const before = await shadowCount(route, reason);
    const received = upstream.received.length;
    const requestId = newJti(`shadow-${reason}`);
    const sent = await tokens();
    const reply = await call(asSupport, path, { ...sent, requestId });
    expect(reply.status).toBe(200);
    expect(upstream.received.length).toBe(received + 1);
    const seen = JSON.parse(reply.text) as Seen;
    // The token headers are stripped as on any forwarded request.
    const names = seen.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    for (const gone of ['x-jit-grant', 'x-device-posture', 'x-intent']) expect(names).not.toContain(gone);
    // x-jit-grant-id only for a grant that verified (the grant was not what failed).
    if (namesGrant) expect(seen.headers['x-jit-grant-id']).toBe((JSON.parse(Buffer.from(sent.grant!.split('.')[1]!, 'base64url').toString('utf8')) as { jti: string }).jti);
    else expect(seen.headers['x-jit-grant-id']).toBeUndefined();
    expect(await shadowCount(route, reason)).toBe(before + 1);
    const line = audit.records.find((r) => r.request_id === requestId);
    expect(line).toMatchObject({ decision: 'deny', reason, route, mode: 'shadow', protocol: 'http1' });
  });

  it('over HTTP/2 too: the would-be denial is forwarded and its audit line says protocol h2', async () => {
    const before = await shadowCount('refund-shadow', 'grant_required');
    const requestId = newJti('shadow-h2');
    const session = h2connect(`https://localhost:${proxy.proxyPort}`, { ca: pki.ca.bundlePem, cert: support.certPem, key: support.keyPem, servername: 'localhost' });
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const stream = session.request({ ':method': 'POST', ':path': '/shadow/orders/1/refund', 'x-request-id': requestId, 'x-device-posture': 'unused' });
        let code = 0;
        stream.on('response', (headers) => (code = Number(headers[':status'])));
        stream.on('error', reject);
        stream.on('end', () => resolve(code));
        stream.resume();
        stream.end();
      });
      expect(status).toBe(200);
    } finally {
      session.close();
    }
    expect(await shadowCount('refund-shadow', 'grant_required')).toBe(before + 1);
    expect(audit.records.find((r) => r.request_id === requestId)).toMatchObject({ decision: 'deny', reason: 'grant_required', mode: 'shadow', protocol: 'h2' });
  });

  it('an allowed request on a shadow route is forwarded with its grant named, and not counted', async () => {
    const total = async () => metric(proxy, 'portcullis_shadow_denials_total');
    const before = await total();
    const jti = newJti('allowed');
    const requestId = newJti('shadow-allow');
    const reply = await call(asSupport, '/shadow/orders/3/refund', { grant: await grant({ jti }), posture: await posture(), requestId });
    expect(reply.status).toBe(200);
    expect((JSON.parse(reply.text) as Seen).headers['x-jit-grant-id']).toBe(jti);
    expect(await total()).toBe(before);
    expect(audit.records.find((r) => r.request_id === requestId)).toMatchObject({ decision: 'allow', reason: 'allowed', mode: 'shadow', grant_jti: jti });
  });

  it('the same policy behind an enforce route still refuses, audited as mode enforce', async () => {
    const total = await metric(proxy, 'portcullis_shadow_denials_total');
    const received = upstream.received.length;
    const requestId = newJti('enforce');
    const reply = await call(asSupport, '/orders/1/refund', { grant: await grant(), posture: await posture('medium'), requestId });
    expect(reply.status).toBe(403);
    expect(reply.json().reason).toBe('posture_insufficient');
    expect(upstream.received.length).toBe(received);
    expect(await metric(proxy, 'portcullis_shadow_denials_total')).toBe(total);
    expect(audit.records.find((r) => r.request_id === requestId)).toMatchObject({ decision: 'deny', reason: 'posture_insufficient', mode: 'enforce', protocol: 'http1' });
  });

  it('peer, path and route refusals are never shadowed', async () => {
    const total = await metric(proxy, 'portcullis_shadow_denials_total');
    const received = upstream.received.length;
    const peer = await call(asOutsider, '/shadow/orders/1/refund', { grant: await grant(), posture: await posture() });
    expect([peer.status, peer.json().reason]).toEqual([403, 'peer_not_allowed']);
    const path = await call(asSupport, '/shadow/orders/%2F/refund', { grant: await grant(), posture: await posture() });
    expect([path.status, path.json().reason]).toEqual([400, 'bad_path']);
    const route = await call(asSupport, '/shadow/orders/1/cancel', { grant: await grant(), posture: await posture() });
    expect([route.status, route.json().reason]).toEqual([403, 'no_route']);
    expect(upstream.received.length).toBe(received);
    expect(await metric(proxy, 'portcullis_shadow_denials_total')).toBe(total);
  });

  it('GET /admin/cache: per route entries, hits, misses, hit ratio, mode, and the bound of each stored allow', async () => {
    const g = await grant();
    const p = await posture();
    const before = await metric(proxy, 'portcullis_cache_ttl_bound_total', { route: 'refund', bound: 'allow_ttl' });
    // allowTtl 30 s is below the grant's 10 min and the posture's maxAge 60 s: allow_ttl bounds it.
    expect((await call(asSupport, '/orders/5/refund', { grant: g, posture: p })).status).toBe(200);
    expect((await call(asSupport, '/orders/5/refund', { grant: g, posture: p })).status).toBe(200);
    const { status, json } = await admin(proxy, 'GET', '/admin/cache');
    expect(status).toBe(200);
    const routesSeen = json.routes as { route: string; mode: string; entries: number; hits: number; misses: number; hitRatio: number; bounds: Record<string, number> }[];
    expect(routesSeen.map((r) => [r.route, r.mode])).toEqual([['refund-shadow', 'shadow'], ['void-shadow', 'shadow'], ['refund', 'enforce']]);
    const refund = routesSeen.find((r) => r.route === 'refund')!;
    expect(refund).toMatchObject({ entries: 2, hits: 1, misses: 2, bounds: { pdp: 0, allow_ttl: 1, route_ttl: 0, grant_exp: 0, posture: 0 } });
    expect(refund.hitRatio).toBeCloseTo(1 / 3);
    expect(await metric(proxy, 'portcullis_cache_ttl_bound_total', { route: 'refund', bound: 'allow_ttl' })).toBe(before + 1);
  });

  it('a reload moves a route to enforce and back; a deny cached under shadow is never forwarded on enforce', async () => {
    const g = await grant();
    const p = await posture('medium');
    // Decided under shadow: a PDP deny, cached for denyTtl (30 s), forwarded.
    expect((await call(asSupport, '/shadow/orders/7/refund', { grant: g, posture: p })).status).toBe(200);
    expect((await call(asSupport, '/shadow/orders/7/refund', { grant: g, posture: p })).status).toBe(200);
    expect(audit.records.at(-1)).toMatchObject({ source: 'cache', mode: 'shadow', reason: 'posture_insufficient' });

    pki.write('portcullis.yaml', configYaml(pki, upstream.url, routes('enforce')));
    expect(proxy.reload()).toMatchObject({ ok: true });
    const received = upstream.received.length;
    const refused = await call(asSupport, '/shadow/orders/7/refund', { grant: g, posture: p });
    expect([refused.status, refused.json().reason]).toEqual([403, 'posture_insufficient']);
    expect(upstream.received.length).toBe(received);
    expect(audit.records.at(-1)).toMatchObject({ mode: 'enforce', route: 'refund-shadow' });
    const cache = await admin(proxy, 'GET', '/admin/cache');
    expect((cache.json.routes as { route: string; mode: string }[]).find((r) => r.route === 'refund-shadow')?.mode).toBe('enforce');

    pki.write('portcullis.yaml', configYaml(pki, upstream.url, routes('shadow')));
    expect(proxy.reload()).toMatchObject({ ok: true });
    expect((await call(asSupport, '/shadow/orders/7/refund', { grant: g, posture: p })).status).toBe(200);
    expect(audit.records.at(-1)).toMatchObject({ mode: 'shadow', reason: 'posture_insufficient' });
  });

  it('a reload to an unknown mode is refused naming the route, and the running config keeps serving', async () => {
    pki.write('portcullis.yaml', configYaml(pki, upstream.url, routes('shadow').replace('mode: shadow', 'mode: dry-run')));
    const result = proxy.reload();
    expect(result.ok).toBe(false);
    expect(result).toMatchObject({ error: expect.stringContaining('route "refund-shadow": mode must be "enforce" or "shadow", got "dry-run"') as unknown });
    expect((await call(asSupport, '/shadow/orders/1/refund', { posture: await posture() })).status).toBe(200);
  });
});
