// The decision path, reason by reason (SPEC "The decision, per request", "Tokens", "Responses",
// "Audit log"): real issuer keys (JWKS file, PEM public key, remote JWKS), real signed tokens,
// real mTLS peers and a real upstream. Every deny is checked for its SPEC status and body.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from 'undici';
import { mintGrant, mintPosture } from '../../src/cli/mint.ts';
import { buildGeneration } from '../../src/generation.ts';
import { loadPolicy } from '../../src/config/load-policy.ts';
import type { Pdp, PdpInput, PdpResult } from '../../src/pdp/pdp.ts';
import type { Generation } from '../../src/server.ts';
import type { Instance } from '../../src/cli/instance.ts';
import { memoryAuditLog } from '../../src/telemetry/audit.ts';
import { clientAgent, configYaml, createPki, get, startProxy, startUpstream, type Issued, type Pki, type Upstream } from '../support/harness.ts';
import { parseRaw, rawSession } from '../support/raw-tls.ts';
import {
  BILLING_ID, grantClaims, issuerKey, JIT_ISS, metric, newJti, OWN_ID, PEM_ISS, POSTURE_ISS, REMOTE_ISS, serveJwks, signToken, sleep, SUPPORT_ID, SUPPORT_WEB_ID,
  type GrantClaims, type IssuerKey, type JwksServer,
} from './decision-support.ts';

const POLICY = `tiers:
  high:     { grant: true, posture: high, maxGrantTtl: 15m }
  critical: { grant: true, posture: high, intent: true, maxGrantTtl: 5m }
rules:
  - id: support-refunds
    effect: allow
    subjects: ["spiffe://example.org/ns/prod/sa/support-*"]
    actions: ["orders.refund", "orders.void"]
    resources: ["order:*"]
  - id: notes-for-all
    effect: allow
    actions: ["notes.write"]
  # After the allow on purpose: a deny rule wins wherever it stands.
  - id: block-order-13
    effect: deny
    subjects: ["spiffe://example.org/ns/prod/sa/support-*"]
    actions: ["orders.*"]
    resources: ["order:13"]
`;

function routesAndTokens(jwksUrl: string): string {
  return `routes:
  - name: health
    match: { methods: [GET], path: /healthz }
    privileged: false
  - name: refund
    match: { methods: [POST], path: "/orders/{id}/refund" }
    action: orders.refund
    resource: "order:{id}"
    sensitivity: high
  - name: void
    match: { methods: [POST], path: "/orders/{id}/void" }
    action: orders.void
    resource: "order:{id}"
    sensitivity: critical
  - name: notes
    match: { methods: [POST], path: "/notes/{id}" }
    action: notes.write
    resource: "note:{id}"
    sensitivity: low
cache: { maxEntries: 10000, allowTtl: 30s, denyTtl: 2s }
grants:
  issuers:
    - { issuer: "${JIT_ISS}", jwksFile: jit-jwks.json }
    - { issuer: "${PEM_ISS}", publicKeyFile: jit-pem.pem }
    - { issuer: "${REMOTE_ISS}", jwksUrl: "${jwksUrl}" }
  audience: self
  clockSkew: 2s
posture:
  issuers: [{ issuer: "${POSTURE_ISS}", jwksFile: posture-jwks.json }]
  maxAge: 60s
`;
}

interface Reply {
  status: number;
  text: string;
  headers: Record<string, string | string[] | undefined>;
}

describe('the decision path, reason by reason', () => {
  let pki: Pki;
  let upstream: Upstream;
  let jwksServer: JwksServer;
  let proxy: Instance;
  const audit = memoryAuditLog();
  let jit: IssuerKey;
  let pemIssuer: IssuerKey;
  let remote: IssuerKey;
  let postureKey: IssuerKey;
  let rogue: IssuerKey;
  let support: Issued;
  let supportAgain: Issued;
  let supportWeb: Issued;
  let billing: Issued;
  const agents: Agent[] = [];
  let asSupport: Agent;
  let asSupportAgain: Agent;
  let asSupportWeb: Agent;
  let asBilling: Agent;
  /** Every token sent in this file: none may ever reach the audit log. */
  const tokensSent = new Set<string>();
  const builtGenerations: Generation[] = [];

  const grant = async (c: GrantClaims = {}, key: IssuerKey = jit): Promise<string> => signToken(grantClaims(c), { key: key.key, kid: key.kid });
  const posture = (sub = SUPPORT_ID, trust = 'high', nowMs?: number, ttl = '10m'): Promise<string> =>
    mintPosture({ key: postureKey.key, kid: postureKey.kid, iss: POSTURE_ISS, sub, trust, ttl, nowMs });

  async function call(agent: Agent, path: string, tokens: { grant?: string; posture?: string; intent?: string } = {}): Promise<Reply> {
    const headers: Record<string, string> = {};
    if (tokens.grant !== undefined) headers['x-jit-grant'] = tokens.grant;
    if (tokens.posture !== undefined) headers['x-device-posture'] = tokens.posture;
    if (tokens.intent !== undefined) headers['x-intent'] = tokens.intent;
    for (const t of [tokens.grant, tokens.posture]) if (t) tokensSent.add(t);
    const reply = await get(agent, proxy.proxyPort, path, { method: 'POST', headers });
    return { status: reply.status, text: reply.text, headers: reply.headers };
  }

  /** A SPEC deny: the status, JSON `{error, reason, request_id}` and nothing of the policy. */
  function expectDeny(reply: Reply, status: number, reason: string): void {
    expect({ status: reply.status, body: reply.text }).toMatchObject({ status });
    expect(reply.headers['content-type']).toBe('application/json');
    const body = JSON.parse(reply.text) as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(['error', 'reason', 'request_id']);
    expect(body.reason).toBe(reason);
    expect(typeof body.error).toBe('string');
    expect(body.request_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(reply.text.toLowerCase()).not.toMatch(/rule|tier|support-refunds|block-order-13|notes-for-all/);
  }

  beforeAll(async () => {
    pki = await createPki();
    upstream = await startUpstream();
    [jit, pemIssuer, remote, postureKey, rogue] = await Promise.all([issuerKey('jit-1'), issuerKey('pem-1'), issuerKey('remote-1'), issuerKey('posture-1'), issuerKey('jit-1')]);
    pki.write('jit-jwks.json', jit.jwks);
    pki.write('jit-pem.pem', pemIssuer.spkiPem);
    pki.write('posture-jwks.json', postureKey.jwks);
    pki.write('policy.yaml', POLICY);
    jwksServer = await serveJwks(remote.jwks);
    proxy = await startProxy(pki, configYaml(pki, upstream.url, routesAndTokens(jwksServer.url)), { audit });
    [support, supportAgain, supportWeb, billing] = await Promise.all([
      pki.ca.svid('/ns/prod/sa/support-bot'),
      pki.ca.svid('/ns/prod/sa/support-bot'),
      pki.ca.svid('/ns/prod/sa/support-web'),
      pki.ca.svid('/ns/prod/sa/billing'),
    ]);
    const make = (who: Issued) => {
      const agent = clientAgent(pki.ca.bundlePem, who);
      agents.push(agent);
      return agent;
    };
    asSupport = make(support);
    asSupportAgain = make(supportAgain);
    asSupportWeb = make(supportWeb);
    asBilling = make(billing);
  });
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.close()));
    await proxy.close();
    await Promise.all(builtGenerations.map((g) => g.upstream.close()));
    await upstream.close();
    await jwksServer.close();
    pki.cleanup();
  });

  it('allows a good grant, posture and intent; the service sees x-jit-grant-id and none of the token headers', async () => {
    const jti = newJti('allow');
    const g = await grant({ scope: 'orders.void', intent: 'refund INC-1', jti, exp: Math.floor(Date.now() / 1000) + 240, approver: 'alice@example.org', justification: 'INC-1' });
    const before = upstream.received.length;
    const reply = await call(asSupport, '/orders/5/void', { grant: g, posture: await posture(), intent: 'refund INC-1' });
    expect(reply.status).toBe(200);
    expect(upstream.received.length).toBe(before + 1);
    const seen = JSON.parse(reply.text) as { headers: Record<string, string>; rawHeaders: string[] };
    expect(seen.headers['x-jit-grant-id']).toBe(jti);
    const names = seen.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    for (const gone of ['x-jit-grant', 'x-device-posture', 'x-intent']) expect(names).not.toContain(gone);
    const record = audit.records.find((r) => r.grant_jti === jti)!;
    expect(record).toMatchObject({ decision: 'allow', reason: 'allowed', source: 'pdp', peer: SUPPORT_ID, action: 'orders.void', resource: 'order:5', route: 'void', approver: 'alice@example.org', justification: 'INC-1', intent: 'refund INC-1', posture_tier: 'high' });
    expect(record.pdp_detail).toContain('support-refunds');
  });

  it('grant_required 401: a high-sensitivity route without a grant', async () => {
    expectDeny(await call(asSupport, '/orders/1/refund', { posture: await posture() }), 401, 'grant_required');
  });

  describe('grant_invalid 401: a bad grant is never ignored', () => {
    const cases: [string, () => Promise<string>][] = [
      ['malformed', async () => 'not-a-jwt'],
      ['three garbage parts', async () => 'aaa.bbb.ccc'],
      ['truncated', async () => (await grant()).slice(0, -6)],
      ['signature of another grant', async () => {
        const [a, b] = [await grant(), await grant({ scope: 'orders.*' })];
        return a.slice(0, a.lastIndexOf('.')) + b.slice(b.lastIndexOf('.'));
      }],
      ['wrongly signed (another key, same kid)', async () => grant({}, rogue)],
      ['unknown issuer', async () => grant({ iss: 'https://evil.example.org' })],
      ['issuer of the PEM key, signed by the JWKS key', async () => grant({ iss: PEM_ISS })],
      ['wrong aud', async () => grant({ aud: 'spiffe://example.org/ns/prod/sa/other-api' })],
      ['missing jti', async () => {
        const claims = grantClaims();
        delete claims.jti;
        return signToken(claims, { key: jit.key, kid: jit.kid });
      }],
      ['a jti that would split the service\'s request head', async () => grant({ jti: 'g-1\r\nX-Admin: true' })],
      ['a jti with spaces or beyond printable ASCII', async () => grant({ jti: 'grant one é' })],
      ['empty scope', async () => grant({ scope: ' ' })],
      ['nbf in the future (beyond clockSkew)', async () => grant({ nbf: Math.floor(Date.now() / 1000) + 60 })],
      ['oversized (> limits.maxTokenBytes), yet genuinely signed', async () => grant({ justification: 'x'.repeat(9000) })],
    ];
    it.each(cases)('%s', async (_name, make) => {
      const token = await make();
      expectDeny(await call(asSupport, '/orders/1/refund', { grant: token, posture: await posture() }), 401, 'grant_invalid');
    });

    it('alg "none" is refused', async () => {
      const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
      const token = `${b64({ alg: 'none', typ: 'JWT' })}.${b64(grantClaims())}.`;
      expectDeny(await call(asSupport, '/orders/1/refund', { grant: token, posture: await posture() }), 401, 'grant_invalid');
    });

    it("HS256 keyed with the issuer's own public key (PEM text or JWK) is refused", async () => {
      const pemKeyed = await signToken(grantClaims({ iss: PEM_ISS }), { key: new TextEncoder().encode(pemIssuer.spkiPem), alg: 'HS256' });
      const jwkKeyed = await signToken(grantClaims(), { key: new TextEncoder().encode(JSON.stringify(jit.jwk)), alg: 'HS256', kid: jit.kid });
      const jwksKeyed = await signToken(grantClaims(), { key: new TextEncoder().encode(jit.jwks), alg: 'HS256', kid: jit.kid });
      for (const token of [pemKeyed, jwkKeyed, jwksKeyed]) {
        expectDeny(await call(asSupport, '/orders/1/refund', { grant: token, posture: await posture() }), 401, 'grant_invalid');
      }
    });

    it('a not-yet-valid grant is refused before nbf and accepted once nbf (less clockSkew) has passed', async () => {
      // clockSkew is 2 s: jose refuses while nbf > floor(now) + 2.
      const nbf = Math.ceil(Date.now() / 1000 + 0.2) + 2;
      const token = await grant({ nbf, resources: ['order:*'] });
      const p = await posture();
      expectDeny(await call(asSupport, '/orders/21/refund', { grant: token, posture: p }), 401, 'grant_invalid');
      await sleep((nbf - 2) * 1000 - Date.now() + 30);
      expect((await call(asSupport, '/orders/21/refund', { grant: token, posture: p })).status).toBe(200);
    });
  });

  describe('grant_expired 401', () => {
    it('long expired', async () => {
      const now = Math.floor(Date.now() / 1000);
      expectDeny(await call(asSupport, '/orders/1/refund', { grant: await grant({ iat: now - 120, exp: now - 60 }), posture: await posture() }), 401, 'grant_expired');
    });
    it('expired half a second ago: exp is never stretched by clockSkew', async () => {
      const before = await metric(proxy, 'portcullis_grant_expired_total');
      const now = Date.now() / 1000;
      const jti = newJti('just-expired');
      expectDeny(await call(asSupport, '/orders/1/refund', { grant: await grant({ jti, iat: Math.floor(now) - 60, exp: now - 0.5 }), posture: await posture() }), 401, 'grant_expired');
      expect(await metric(proxy, 'portcullis_grant_expired_total')).toBe(before + 1);
      // Its signature verified, so the audit record names the grant.
      expect(audit.records.at(-1)).toMatchObject({ grant_jti: jti, reason: 'grant_expired', source: 'local' });
    });
  });

  describe('grant_subject_mismatch 403', () => {
    it("workload B replays a grant issued to workload A", async () => {
      const g = await grant({ sub: SUPPORT_ID });
      expect((await call(asSupport, '/orders/2/refund', { grant: g, posture: await posture() })).status).toBe(200);
      expectDeny(await call(asSupportWeb, '/orders/2/refund', { grant: g, posture: await posture(SUPPORT_WEB_ID) }), 403, 'grant_subject_mismatch');
    });

    it('a grant bound to cert A (cnf x5t#S256) is refused with another cert of the same SPIFFE ID', async () => {
      const thumbprint = createHash('sha256').update(Buffer.from(support.cert.rawData)).digest('base64url');
      const bound = await grant({ cnf: { 'x5t#S256': thumbprint } });
      const minted = await mintGrant({ key: jit.key, kid: jit.kid, iss: JIT_ISS, sub: SUPPORT_ID, aud: OWN_ID, scope: 'orders.refund', ttl: '5m', cnfCertPem: support.certPem });
      for (const token of [bound, minted]) {
        tokensSent.add(token);
        expect((await call(asSupport, '/orders/3/refund', { grant: token, posture: await posture() })).status).toBe(200);
        expectDeny(await call(asSupportAgain, '/orders/3/refund', { grant: token, posture: await posture() }), 403, 'grant_subject_mismatch');
      }
    });
  });

  describe('grant_scope 403', () => {
    it('the action is not in scope', async () => {
      expectDeny(await call(asSupport, '/orders/1/refund', { grant: await grant({ scope: 'orders.read notes.write' }), posture: await posture() }), 403, 'grant_scope');
    });
    it('the resource is not in resources', async () => {
      const g = await grant({ scope: 'orders.*', resources: ['order:2', 'order:3*'] });
      expectDeny(await call(asSupport, '/orders/1/refund', { grant: g, posture: await posture() }), 403, 'grant_scope');
      expect((await call(asSupport, '/orders/2/refund', { grant: g, posture: await posture() })).status).toBe(200);
      expect((await call(asSupport, '/orders/37/refund', { grant: g, posture: await posture() })).status).toBe(200);
    });
  });

  it('grant_ttl_too_long 403: a 1 h grant where the high tier allows 15 m', async () => {
    const now = Math.floor(Date.now() / 1000);
    expectDeny(await call(asSupport, '/orders/1/refund', { grant: await grant({ iat: now, exp: now + 3600 }), posture: await posture() }), 403, 'grant_ttl_too_long');
  });

  it('posture_required 401', async () => {
    expectDeny(await call(asSupport, '/orders/1/refund', { grant: await grant() }), 401, 'posture_required');
  });

  describe('posture_invalid 401', () => {
    it('signed by a key the posture issuer does not have', async () => {
      const forged = await mintPosture({ key: rogue.key, kid: postureKey.kid, iss: POSTURE_ISS, sub: SUPPORT_ID, trust: 'high', ttl: '10m' });
      expectDeny(await call(asSupport, '/orders/1/refund', { grant: await grant(), posture: forged }), 401, 'posture_invalid');
    });
    it('signed by the grant issuer (not a posture issuer)', async () => {
      const wrongIssuer = await mintPosture({ key: jit.key, kid: jit.kid, iss: JIT_ISS, sub: SUPPORT_ID, trust: 'high', ttl: '10m' });
      expectDeny(await call(asSupport, '/orders/1/refund', { grant: await grant(), posture: wrongIssuer }), 401, 'posture_invalid');
    });
    it('naming another peer as sub', async () => {
      expectDeny(await call(asSupport, '/orders/1/refund', { grant: await grant(), posture: await posture(SUPPORT_WEB_ID) }), 401, 'posture_invalid');
    });
    it('malformed', async () => {
      expectDeny(await call(asSupport, '/orders/1/refund', { grant: await grant(), posture: 'garbage' }), 401, 'posture_invalid');
    });
  });

  describe('posture_stale 401', () => {
    it('iat older than posture.maxAge (60 s), exp still ahead', async () => {
      expectDeny(await call(asSupport, '/orders/1/refund', { grant: await grant(), posture: await posture(SUPPORT_ID, 'high', Date.now() - 120_000, '10m') }), 401, 'posture_stale');
    });
    it('expired', async () => {
      expectDeny(await call(asSupport, '/orders/1/refund', { grant: await grant(), posture: await posture(SUPPORT_ID, 'high', Date.now() - 50_000, '10s') }), 401, 'posture_stale');
    });
  });

  it('posture_insufficient 403: tier low where high is needed', async () => {
    expectDeny(await call(asSupport, '/orders/1/refund', { grant: await grant(), posture: await posture(SUPPORT_ID, 'low') }), 403, 'posture_insufficient');
  });

  describe('intent', () => {
    it('intent_required 403: the grant names an intent, the request declares none', async () => {
      expectDeny(await call(asSupport, '/orders/1/refund', { grant: await grant({ intent: 'refund INC-7' }), posture: await posture() }), 403, 'intent_required');
    });
    it('intent_required 403: the critical tier needs one and the request has none', async () => {
      const now = Math.floor(Date.now() / 1000);
      expectDeny(await call(asSupport, '/orders/1/void', { grant: await grant({ scope: 'orders.void', exp: now + 120 }), posture: await posture() }), 403, 'intent_required');
    });
    it("intent_mismatch 403: the declared intent is not the grant's", async () => {
      expectDeny(await call(asSupport, '/orders/1/refund', { grant: await grant({ intent: 'refund INC-7' }), posture: await posture(), intent: 'refund INC-8' }), 403, 'intent_mismatch');
    });
    it('an intent in UTF-8 equal to the grant\'s is accepted (bytes on the wire, not UTF-16 units, count toward 256); bad UTF-8, controls or 257 bytes are intent_mismatch', async () => {
      // Sent as raw bytes: the header value is UTF-8 on the wire, as a real client sends it.
      const raw = async (grantToken: string, intent: Buffer): Promise<{ status: number; reason?: string; requestId?: string }> => {
        const session = await rawSession(proxy.proxyPort, pki.ca.bundlePem, support);
        const head = `POST /orders/31/refund HTTP/1.1\r\nHost: localhost\r\nx-jit-grant: ${grantToken}\r\nx-device-posture: ${await posture()}\r\nContent-Length: 0\r\nConnection: close\r\nx-intent: `;
        session.socket.write(Buffer.concat([Buffer.from(head, 'latin1'), intent, Buffer.from('\r\n\r\n', 'latin1')]));
        await session.closedWithin(5_000);
        const reply = parseRaw(session.text());
        if (reply.status === 200) return { status: 200 };
        const body = JSON.parse(reply.body) as { reason: string; request_id: string };
        return { status: reply.status, reason: body.reason, requestId: body.request_id };
      };
      const text = 'remboursement café №42 ☕ 退款';
      const good = await grant({ intent: text });
      tokensSent.add(good);
      const before = audit.records.length;
      expect(await raw(good, Buffer.from(text, 'utf8'))).toEqual({ status: 200 });
      expect(audit.records.slice(before).find((r) => r.resource === 'order:31')?.intent).toBe(text);
      // 128 × "é" is 256 bytes (128 UTF-16 units): allowed; one more byte is too long.
      const full = 'é'.repeat(128);
      const fullGrant = await grant({ intent: full });
      expect(await raw(fullGrant, Buffer.from(full, 'utf8'))).toEqual({ status: 200 });
      const longer = `${full}x`;
      expect(await raw(await grant({ intent: longer }), Buffer.from(longer, 'utf8'))).toMatchObject({ status: 403, reason: 'intent_mismatch' });
      // Latin-1 bytes that are not UTF-8, an overlong encoding, a C1 control (U+0085) in UTF-8.
      for (const bad of [Buffer.from('caf\xe9', 'latin1'), Buffer.from([0x63, 0xc0, 0xaf]), Buffer.from('a\u0085b', 'utf8')]) {
        expect(await raw(good, bad)).toMatchObject({ status: 403, reason: 'intent_mismatch' });
      }
    });

    it('intent_mismatch 403: a malformed intent header', async () => {
      expectDeny(await call(asSupport, '/orders/1/refund', { grant: await grant(), posture: await posture(), intent: 'x'.repeat(300) }), 403, 'intent_mismatch');
    });
  });

  describe('policy_denied 403', () => {
    it('no allow rule names the peer', async () => {
      const g = await grant({ sub: BILLING_ID });
      expectDeny(await call(asBilling, '/orders/1/refund', { grant: g, posture: await posture(BILLING_ID) }), 403, 'policy_denied');
      const record = audit.records.find((r) => r.peer === BILLING_ID && r.reason === 'policy_denied')!;
      expect(record.pdp_detail).toBe('no allow rule matched');
    });
    it('a deny rule wins over an earlier allow rule', async () => {
      const jti = newJti('deny-rule');
      expectDeny(await call(asSupport, '/orders/13/refund', { grant: await grant({ jti }), posture: await posture() }), 403, 'policy_denied');
      const record = audit.records.find((r) => r.grant_jti === jti)!;
      expect(record).toMatchObject({ decision: 'deny', reason: 'policy_denied', source: 'pdp', resource: 'order:13' });
      expect(record.pdp_detail).toContain('block-order-13');
    });
  });

  it('grant and posture issuers by publicKeyFile (PEM SPKI) and jwksUrl work like the JWKS file', async () => {
    const viaPem = await grant({ iss: PEM_ISS }, pemIssuer);
    expect((await call(asSupport, '/orders/4/refund', { grant: viaPem, posture: await posture() })).status).toBe(200);
    const viaUrl = await grant({ iss: REMOTE_ISS }, remote);
    expect((await call(asSupport, '/orders/4/refund', { grant: viaUrl, posture: await posture() })).status).toBe(200);
    expect(jwksServer.hits()).toBeGreaterThanOrEqual(1);
    // Each issuer's key only vouches for its own iss.
    expectDeny(await call(asSupport, '/orders/4/refund', { grant: await grant({ iss: REMOTE_ISS }, pemIssuer), posture: await posture() }), 401, 'grant_invalid');
    expectDeny(await call(asSupport, '/orders/4/refund', { grant: await grant({ iss: PEM_ISS }, remote), posture: await posture() }), 401, 'grant_invalid');
  });

  describe('pdp_unavailable 503', () => {
    const throwing: Pdp = {
      kind: 'test-throwing',
      evaluate: () => {
        throw new Error('policy engine exploded: rule table corrupt');
      },
    };
    const silent: Pdp = { kind: 'test-silent', evaluate: () => new Promise<PdpResult>(() => undefined) };

    it('a PDP that throws gives 503, never cached: the same generation with a working PDP allows the very next request', async () => {
      const original = proxy.proxy.currentGeneration;
      const config = original.config;
      try {
        const broken = buildGeneration(900, config, proxy.shared, throwing);
        builtGenerations.push(broken);
        proxy.proxy.useGeneration(broken);
        const g = await grant();
        const p = await posture();
        const failedBefore = await metric(proxy, 'portcullis_pdp_requests_total', { outcome: 'error' });
        const reply = await call(asSupport, '/orders/8/refund', { grant: g, posture: p });
        expectDeny(reply, 503, 'pdp_unavailable');
        expect(reply.text).not.toContain('exploded');
        expect(await metric(proxy, 'portcullis_pdp_requests_total', { outcome: 'error' })).toBe(failedBefore + 1);
        const requestId = (JSON.parse(reply.text) as { request_id: string }).request_id;
        expect(audit.records.find((r) => r.request_id === requestId)?.pdp_detail).toContain('exploded');
        // Same generation id (so the same cache keys), now with the real policy.
        const working = buildGeneration(900, config, proxy.shared, loadPolicy(config.pdp.policyFile!));
        builtGenerations.push(working);
        proxy.proxy.useGeneration(working);
        expect((await call(asSupport, '/orders/8/refund', { grant: g, posture: p })).status).toBe(200);
      } finally {
        proxy.proxy.useGeneration(original);
      }
    });

    it('a PDP that never answers gives 503 after pdp.timeout', async () => {
      const original = proxy.proxy.currentGeneration;
      try {
        const stuck = buildGeneration(901, original.config, proxy.shared, silent);
        builtGenerations.push(stuck);
        proxy.proxy.useGeneration(stuck);
        const before = await metric(proxy, 'portcullis_pdp_requests_total', { outcome: 'timeout' });
        const started = Date.now();
        expectDeny(await call(asSupport, '/orders/9/refund', { grant: await grant(), posture: await posture() }), 503, 'pdp_unavailable');
        expect(Date.now() - started).toBeGreaterThanOrEqual(200);
        expect(await metric(proxy, 'portcullis_pdp_requests_total', { outcome: 'timeout' })).toBe(before + 1);
      } finally {
        proxy.proxy.useGeneration(original);
      }
    });

    it('a PDP answer for one request is computed from real facts (sanity of the wrapper seam)', async () => {
      const seen: PdpInput[] = [];
      const real = loadPolicy(proxy.proxy.currentGeneration.config.pdp.policyFile!);
      const spy: Pdp = { kind: 'spy', evaluate: (input) => (seen.push(input), real.evaluate(input)) };
      const original = proxy.proxy.currentGeneration;
      try {
        const g = buildGeneration(902, original.config, proxy.shared, spy);
        builtGenerations.push(g);
        proxy.proxy.useGeneration(g);
        const jti = newJti('spy');
        expect((await call(asSupport, '/orders/10/refund', { grant: await grant({ jti }), posture: await posture() })).status).toBe(200);
        expect(seen).toHaveLength(1);
        expect(seen[0]).toMatchObject({ subject: SUPPORT_ID, action: 'orders.refund', resource: 'order:10', route: 'refund', sensitivity: 'high' });
        expect(seen[0]!.grant?.jti).toBe(jti);
      } finally {
        proxy.proxy.useGeneration(original);
      }
    });
  });

  it('deny bodies name no rule while the audit log does; the audit log never holds a token', async () => {
    const denies = audit.records.filter((r) => r.decision === 'deny');
    expect(new Set(denies.map((r) => r.reason)).size).toBeGreaterThanOrEqual(14);
    expect(audit.records.some((r) => r.pdp_detail?.includes('block-order-13'))).toBe(true);
    const everything = JSON.stringify(audit.records);
    expect(tokensSent.size).toBeGreaterThan(20);
    for (const token of tokensSent) {
      if (token.length < 16) continue;
      expect(everything).not.toContain(token);
      const signature = token.slice(token.lastIndexOf('.') + 1);
      if (signature.length >= 16) expect(everything).not.toContain(signature);
      const payload = token.split('.')[1];
      if (payload && payload.length >= 16) expect(everything).not.toContain(payload);
    }
  });
});
