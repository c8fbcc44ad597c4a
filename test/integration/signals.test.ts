// The Shared Signals receiver (SPEC "Shared Signals receiver"; issue 12 item 5 and "Bad input"):
// SETs signed with jose and pushed over real HTTP (RFC 8935) to a real sidecar. Each CAEP event
// it acts on is applied (a grant or subject refused afterwards through a real mTLS request, or
// the posture refused posture_revoked); each refused kind gets 400 with RFC 8935's exact `err`
// and changes nothing; with revocation.source: redis a SET taken by one sidecar is enforced by
// another (a real redis-server).
import { generateKeyPairSync } from 'node:crypto';
import { Readable } from 'node:stream';
import { SignJWT, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request, type Agent } from 'undici';
import type { Instance } from '../../src/cli/instance.ts';
import { mintPosture } from '../../src/cli/mint.ts';
import type { memoryAuditLog } from '../../src/telemetry/audit.ts';
import { clientAgent, configYaml, createPki, get, startUpstream, type Pki, type Upstream } from '../support/harness.ts';
import { startRedis, type RedisServer } from '../support/redis-server.ts';
import { grantClaims, issuerKey, JIT_ISS, metric, newJti, POSTURE_ISS, serveJwks, signToken, sleep, startNamed, TD, type GrantClaims, type IssuerKey, type JwksServer } from './decision-support.ts';
import { NOTES_ROUTES } from '../support/notes-route.ts';

const IDP = 'https://idp.example.org';
const REMOTE_IDP = 'https://idp-remote.example.org';
const AUD = 'https://portcullis.example.org/ssf';
const TOKEN = 'ssf-secret-7d1c9a';
const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';

const POLICY = `rules:
  - id: support
    effect: allow
    subjects: ["spiffe://example.org/ns/prod/sa/support-*"]
    actions: ["notes.write"]
`;

const ROUTES = NOTES_ROUTES;

type Push = { status: number; json: Record<string, unknown> | undefined; headers: Record<string, unknown> };

describe('the Shared Signals receiver (signals)', () => {
  let pki: Pki;
  let upstream: Upstream;
  let jit: IssuerKey;
  let postureKey: IssuerKey;
  let idp: IssuerKey;
  let remoteIdp: IssuerKey;
  let jwksServer: JwksServer;
  let instance: Instance;
  let audit: ReturnType<typeof memoryAuditLog>;
  const agents = new Map<string, Agent>();
  let serial = 0;

  /** A fresh workload (its own SVID): what one test revokes never touches another's. */
  async function workload(): Promise<string> {
    const path = `/ns/prod/sa/support-${++serial}`;
    agents.set(`spiffe://${TD}${path}`, clientAgent(pki.ca.bundlePem, await pki.ca.svid(path)));
    return `spiffe://${TD}${path}`;
  }
  const grant = (sub: string, c: GrantClaims = {}) => signToken(grantClaims({ scope: 'notes.write', sub, ...c }), { key: jit.key, kid: jit.kid });
  const posture = (sub: string) => mintPosture({ key: postureKey.key, kid: postureKey.kid, iss: POSTURE_ISS, sub, trust: 'high', ttl: '10m' });

  async function post(on: Instance, sub: string, headers: Record<string, string>): Promise<{ status: number; reason: string | undefined }> {
    const reply = await get(agents.get(sub)!, on.proxyPort, '/notes', { method: 'POST', headers });
    return { status: reply.status, reason: reply.status === 200 ? undefined : (JSON.parse(reply.text) as { reason: string }).reason };
  }

  /** A SET's claims with SSF defaults: this IdP, our audience, now, a fresh jti. */
  function setClaims(event: string, payload: Record<string, unknown>, subId: Record<string, unknown>, more: Record<string, unknown> = {}): JWTPayload {
    return { iss: IDP, aud: AUD, iat: Math.floor(Date.now() / 1000), jti: newJti('set'), sub_id: subId, events: { [`${CAEP}${event}`]: payload }, ...more };
  }
  function sign(claims: JWTPayload, o: { key?: IssuerKey; typ?: string; alg?: string; secret?: Uint8Array } = {}): Promise<string> {
    const key = o.key ?? idp;
    return new SignJWT(claims).setProtectedHeader({ alg: o.alg ?? 'ES256', typ: o.typ ?? 'secevent+jwt', kid: key.kid }).sign(o.secret ?? key.key);
  }
  async function push(on: Instance, body: string, o: { contentType?: string; bearer?: string | null } = {}): Promise<Push> {
    const headers: Record<string, string> = { 'content-type': o.contentType ?? 'application/secevent+jwt' };
    if (o.bearer !== null) headers.authorization = `Bearer ${o.bearer ?? TOKEN}`;
    const response = await request(`http://127.0.0.1:${on.signalsPort}/ssf/events`, { method: 'POST', headers, body });
    const text = await response.body.text();
    return { status: response.statusCode, json: text === '' ? undefined : (JSON.parse(text) as Record<string, unknown>), headers: response.headers };
  }
  const signalsYaml = (more = '') =>
    configYaml(
      pki,
      upstream.url,
      `${ROUTES}grants: { issuers: [{ issuer: "${JIT_ISS}", jwksFile: jit-jwks.json }], maxLifetime: 1h }
posture: { issuers: [{ issuer: "${POSTURE_ISS}", jwksFile: posture-jwks.json }] }
signals:
  listen: { address: 127.0.0.1, port: 0 }
  bearerTokenFile: ssf-token
  transmitters:
    - { issuer: "${IDP}", jwksFile: idp-jwks.json, audience: "${AUD}" }
    - { issuer: "${REMOTE_IDP}", jwksUrl: "${jwksServer.url}", audience: "${AUD}" }
${more}`,
    );

  beforeAll(async () => {
    pki = await createPki();
    upstream = await startUpstream();
    [jit, postureKey, idp, remoteIdp] = await Promise.all([issuerKey('jit-1'), issuerKey('posture-1'), issuerKey('idp-1'), issuerKey('idp-remote-1')]);
    jwksServer = await serveJwks(remoteIdp.jwks);
    pki.write('jit-jwks.json', jit.jwks);
    pki.write('posture-jwks.json', postureKey.jwks);
    pki.write('idp-jwks.json', idp.jwks);
    pki.write('ssf-token', `${TOKEN}\n`);
    pki.write('policy.yaml', POLICY);
    ({ instance, audit } = await startNamed(pki, 'signals.yaml', signalsYaml()));
  });
  afterAll(async () => {
    await instance?.close();
    for (const agent of agents.values()) await agent.close();
    await jwksServer?.close();
    await upstream?.close();
    pki?.cleanup();
  });

  it('session-revoked with a SPIFFE ID (sub_id format uri): 202, and the subject\'s grants are refused from the next request on', async () => {
    const sub = await workload();
    const token = await grant(sub);
    expect(await post(instance, sub, { 'x-jit-grant': token })).toEqual({ status: 200, reason: undefined });
    const reply = await push(instance, await sign(setClaims('session-revoked', { initiating_entity: 'policy', event_timestamp: Math.floor(Date.now() / 1000) }, { format: 'uri', uri: sub })));
    expect(reply).toMatchObject({ status: 202, json: undefined });
    expect(await post(instance, sub, { 'x-jit-grant': token })).toEqual({ status: 403, reason: 'grant_revoked' });
    expect(instance.shared.revocations.holds('sub', sub)).toBe(true);
    expect(audit.revocations.at(-1)).toMatchObject({ event: 'revocation', sub, origin: 'signals', reason: 'caep session-revoked', by: IDP });
    expect(await metric(instance, 'portcullis_signals_received_total', { event: 'session-revoked', result: 'accepted' })).toBe(1);
  });

  it('credential-change with a grant (sub_id format jwt_id): 202, that grant is refused, another grant of the same subject still passes', async () => {
    const sub = await workload();
    const jti = newJti('grant');
    const named = await grant(sub, { jti });
    const other = await grant(sub);
    expect(await post(instance, sub, { 'x-jit-grant': named })).toEqual({ status: 200, reason: undefined });
    const claims = setClaims('credential-change', { credential_type: 'x509', change_type: 'revoke' }, { format: 'jwt_id', iss: JIT_ISS, jti });
    expect((await push(instance, await sign(claims))).status).toBe(202);
    expect(await post(instance, sub, { 'x-jit-grant': named })).toEqual({ status: 403, reason: 'grant_revoked' });
    expect(await post(instance, sub, { 'x-jit-grant': other })).toEqual({ status: 200, reason: undefined });
    expect(audit.revocations.at(-1)).toMatchObject({ jti, origin: 'signals', reason: 'caep credential-change' });
  });

  it('README choices SPEC leaves open: a jwt_id entry revokes that jti whatever issuer its iss names; a uri of another trust domain is accepted and held', async () => {
    const sub = await workload();
    const jti = newJti('any-iss');
    const token = await grant(sub, { jti });
    expect(await post(instance, sub, { 'x-jit-grant': token })).toEqual({ status: 200, reason: undefined });
    const claims = setClaims('session-revoked', {}, { format: 'jwt_id', iss: 'https://some-other-issuer.example.org', jti });
    expect((await push(instance, await sign(claims))).status).toBe(202);
    expect(await post(instance, sub, { 'x-jit-grant': token })).toEqual({ status: 403, reason: 'grant_revoked' });
    const partner = 'spiffe://partner.example/ns/prod/sa/support-bot';
    expect((await push(instance, await sign(setClaims('session-revoked', {}, { format: 'uri', uri: partner }))))).toMatchObject({ status: 202 });
    expect(instance.shared.revocations.holds('sub', partner)).toBe(true);
  });

  it('session-revoked with jwt_id, signed by a transmitter whose keys come from jwksUrl (fetched once, then cached)', async () => {
    const sub = await workload();
    const jti = newJti('grant');
    const named = await grant(sub, { jti });
    for (let i = 0; i < 2; i++) {
      const claims = { ...setClaims('session-revoked', {}, { format: 'jwt_id', iss: JIT_ISS, jti }), iss: REMOTE_IDP };
      expect((await push(instance, await sign(claims, { key: remoteIdp }))).status).toBe(202);
    }
    expect(await post(instance, sub, { 'x-jit-grant': named })).toEqual({ status: 403, reason: 'grant_revoked' });
    expect(jwksServer.hits()).toBe(1);
  });

  it('device-compliance-change to not-compliant: the subject\'s posture is refused posture_revoked, its grants are not; back to compliant applies nothing', async () => {
    const sub = await workload();
    const assertion = await posture(sub);
    expect(await post(instance, sub, { 'x-device-posture': assertion })).toEqual({ status: 200, reason: undefined });
    const before = instance.shared.revocations.size;
    const compliant = setClaims('device-compliance-change', { previous_status: 'not-compliant', current_status: 'compliant' }, { format: 'uri', uri: sub });
    expect((await push(instance, await sign(compliant))).status).toBe(202);
    expect(instance.shared.revocations.size).toBe(before);
    expect(await post(instance, sub, { 'x-device-posture': assertion })).toEqual({ status: 200, reason: undefined });
    const lost = setClaims('device-compliance-change', { previous_status: 'compliant', current_status: 'not-compliant' }, { format: 'uri', uri: sub });
    expect((await push(instance, await sign(lost))).status).toBe(202);
    expect(await post(instance, sub, { 'x-device-posture': assertion })).toEqual({ status: 401, reason: 'posture_revoked' });
    expect(await post(instance, sub, { 'x-jit-grant': await grant(sub) })).toEqual({ status: 200, reason: undefined });
    expect(audit.revocations.at(-1)).toMatchObject({ posture_sub: sub, origin: 'signals', reason: 'caep device-compliance-change' });
    expect(await metric(instance, 'portcullis_signals_received_total', { event: 'device-compliance-change', result: 'accepted' })).toBe(2);
  });

  it('other events (CAEP token-claims-change, a RISC event) are accepted and counted, never applied', async () => {
    const sub = await workload();
    const before = instance.shared.revocations.size;
    const claims = setClaims('token-claims-change', { claims: { role: 'ro-admin' } }, { format: 'uri', uri: sub });
    expect((await push(instance, await sign(claims))).status).toBe(202);
    const risc = { ...setClaims('x', {}, { format: 'email', email: 'jane@example.org' }), events: { 'https://schemas.openid.net/secevent/risc/event-type/account-disabled': { reason: 'hijacking' } } };
    expect((await push(instance, await sign(risc))).status).toBe(202);
    expect(instance.shared.revocations.size).toBe(before);
    expect(await metric(instance, 'portcullis_signals_received_total', { event: 'other', result: 'accepted' })).toBe(2);
  });

  it('every refused kind: 400 (413 for an oversized body) with RFC 8935\'s exact err, and nothing is applied', async () => {
    const victim = await workload();
    const token = await grant(victim);
    const assertion = await posture(victim);
    const revoke = (more: Record<string, unknown> = {}) => setClaims('session-revoked', {}, { format: 'uri', uri: victim }, more);
    const now = Math.floor(Date.now() / 1000);
    const stranger = await issuerKey('idp-1'); // the same kid as the transmitter's, another key
    const hs256 = new Uint8Array(32).fill(7);
    const { privateKey: rsa } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const replayed = await sign(revoke({ jti: newJti('replayed') }));
    const replayVictim = await workload();
    const first = await sign(setClaims('session-revoked', {}, { format: 'uri', uri: replayVictim }));
    expect((await push(instance, first)).status).toBe(202);
    const before = instance.shared.revocations.size;
    const refusedBefore = await metric(instance, 'portcullis_signals_received_total', { result: 'invalid_request' });

    const cases: [string, () => Promise<Push>, number, string, RegExp][] = [
      ['typ JWT', async () => push(instance, await sign(revoke(), { typ: 'JWT' })), 400, 'invalid_request', /typ must be "secevent\+jwt"/],
      ['no typ', async () => push(instance, await new SignJWT(revoke()).setProtectedHeader({ alg: 'ES256', kid: idp.kid }).sign(idp.key)), 400, 'invalid_request', /typ/],
      ['unknown issuer', async () => push(instance, await sign(revoke({ iss: 'https://evil.example.org' }))), 400, 'invalid_issuer', /not a configured transmitter/],
      ['wrong key', async () => push(instance, await sign(revoke(), { key: stranger })), 400, 'invalid_key', /signature does not verify/],
      ['HS256', async () => push(instance, await sign(revoke(), { alg: 'HS256', secret: hs256 })), 400, 'invalid_key', /HS256.*asymmetric only/],
      ['RS256 with no key of that type', async () => push(instance, await new SignJWT(revoke()).setProtectedHeader({ alg: 'RS256', typ: 'secevent+jwt', kid: idp.kid }).sign(rsa)), 400, 'invalid_key', /no single key/],
      ['alg none', async () => push(instance, `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'secevent+jwt' })).toString('base64url')}.${Buffer.from(JSON.stringify(revoke())).toString('base64url')}.`), 400, 'invalid_key', /"none"/],
      ['wrong aud', async () => push(instance, await sign(revoke({ aud: 'https://other.example.org' }))), 400, 'invalid_audience', /aud must name/],
      ['iat 11 minutes old', async () => push(instance, await sign(revoke({ iat: now - 660 }))), 400, 'invalid_request', /iat is \d+ s old/],
      ['iat 5 minutes ahead', async () => push(instance, await sign(revoke({ iat: now + 300 }))), 400, 'invalid_request', /in the future/],
      ['no iat', async () => push(instance, await sign(revoke({ iat: undefined }))), 400, 'invalid_request', /iat must be a number/],
      ['replayed jti', async () => push(instance, first), 400, 'invalid_request', /already received/],
      ['two events', async () => push(instance, await sign(revoke({ events: { [`${CAEP}session-revoked`]: {}, [`${CAEP}credential-change`]: { credential_type: 'pin', change_type: 'update' } } }))), 400, 'invalid_request', /exactly one event, got 2/],
      ['no event', async () => push(instance, await sign(revoke({ events: {} }))), 400, 'invalid_request', /exactly one event, got 0/],
      ['a sub claim', async () => push(instance, await sign(revoke({ sub: victim }))), 400, 'invalid_request', /sub claim/],
      ['an exp claim', async () => push(instance, await sign(revoke({ exp: now + 60 }))), 400, 'invalid_request', /exp claim/],
      ['no sub_id', async () => push(instance, await sign(revoke({ sub_id: undefined }))), 400, 'invalid_request', /sub_id/],
      ['a sub_id Portcullis cannot name (email)', async () => push(instance, await sign(revoke({ sub_id: { format: 'email', email: 'jane@example.org' } }))), 400, 'invalid_request', /format "email" names nothing/],
      ['a uri that is not a SPIFFE ID', async () => push(instance, await sign(revoke({ sub_id: { format: 'uri', uri: 'https://example.org/jane' } }))), 400, 'invalid_request', /not a SPIFFE ID/],
      ['a bad SPIFFE ID', async () => push(instance, await sign(revoke({ sub_id: { format: 'uri', uri: 'spiffe://example.org/ns//sa' } }))), 400, 'invalid_request', /^sub_id: sub: /],
      ['credential-change without change_type', async () => push(instance, await sign(setClaims('credential-change', { credential_type: 'password' }, { format: 'uri', uri: victim }))), 400, 'invalid_request', /change_type/],
      ['device-compliance-change without previous_status', async () => push(instance, await sign(setClaims('device-compliance-change', { current_status: 'not-compliant' }, { format: 'uri', uri: victim }))), 400, 'invalid_request', /previous_status/],
      ['not a JWS', async () => push(instance, 'hello'), 400, 'invalid_request', /compact JWS/],
      ['wrong content type', async () => push(instance, replayed, { contentType: 'application/jwt' }), 400, 'invalid_request', /Content-Type: application\/secevent\+jwt/],
      ['no bearer token', async () => push(instance, replayed, { bearer: null }), 400, 'authentication_failed', /Bearer/],
      ['a wrong bearer token', async () => push(instance, replayed, { bearer: `${TOKEN}x` }), 400, 'authentication_failed', /Bearer/],
      ['an oversized body', async () => push(instance, `${replayed}${' '.repeat(70_000)}`), 413, 'invalid_request', /larger than 65536 bytes/],
    ];
    for (const [name, send, status, err, description] of cases) {
      const reply = await send();
      expect([name, reply.status, reply.json?.err], name).toEqual([name, status, err]);
      expect(reply.json?.description, name).toMatch(description);
      expect(reply.headers['content-type'], name).toBe('application/json');
    }
    // Nothing applied: not one entry more, the victim's grant and posture still pass.
    expect(instance.shared.revocations.size).toBe(before);
    expect(await post(instance, victim, { 'x-jit-grant': token, 'x-device-posture': assertion })).toEqual({ status: 200, reason: undefined });
    expect(audit.revocations.filter((r) => r.sub === victim)).toEqual([]);
    // The SET refused for its transport alone is still good: it was never consumed.
    expect((await push(instance, replayed)).status).toBe(202);
    expect(await post(instance, victim, { 'x-jit-grant': token })).toEqual({ status: 403, reason: 'grant_revoked' });
    // Counted with bounded labels.
    const invalidRequests = cases.filter(([, , , err]) => err === 'invalid_request').length;
    expect(await metric(instance, 'portcullis_signals_received_total', { result: 'invalid_request' })).toBe(refusedBefore + invalidRequests);
    // Refused before one event could be told (bearer token, Content-Type, size, no JWS, not one
    // event): event "unknown", the result saying why; "other" is only a SET of another event type.
    expect(await metric(instance, 'portcullis_signals_received_total', { event: 'unknown', result: 'authentication_failed' })).toBe(2);
    expect(await metric(instance, 'portcullis_signals_received_total', { event: 'unknown', result: 'invalid_request' })).toBe(5);
    expect(await metric(instance, 'portcullis_signals_received_total', { event: 'other' })).toBe(2);
    expect(await metric(instance, 'portcullis_signals_received_total', { event: 'session-revoked', result: 'invalid_key' })).toBe(4);
    expect(await metric(instance, 'portcullis_signals_received_total', { event: 'session-revoked', result: 'invalid_audience' })).toBe(1);
    expect(await metric(instance, 'portcullis_signals_received_total', { event: 'session-revoked', result: 'invalid_issuer' })).toBe(1);
  });

  it('only POST on signals.path: another path 404, another method 405', async () => {
    const other = await request(`http://127.0.0.1:${instance.signalsPort}/admin/revoke`, { method: 'POST', body: '{}' });
    expect([other.statusCode, await other.body.json()]).toEqual([404, { description: 'the SET endpoint is POST /ssf/events' }]);
    const method = await request(`http://127.0.0.1:${instance.signalsPort}/ssf/events`);
    expect([method.statusCode, method.headers.allow]).toEqual([405, 'POST']);
    await method.body.text();
  });

  it('a body over 64 KiB sent chunked (no Content-Length) is refused as it streams in: 413 invalid_request', async () => {
    const chunk = Buffer.alloc(16_384, 0x61);
    const body = () => Readable.from((function* () {
      for (let i = 0; i < 8; i++) yield chunk;
    })());
    const response = await request(`http://127.0.0.1:${instance.signalsPort}/ssf/events`, { method: 'POST', headers: { 'content-type': 'application/secevent+jwt', authorization: `Bearer ${TOKEN}` }, body: body() });
    expect([response.statusCode, await response.body.json()]).toEqual([413, { err: 'invalid_request', description: 'the body is larger than 65536 bytes' }]);
  });

  it('two copies of one SET pushed at once: one is accepted, the other refused as a replay', async () => {
    const sub = await workload();
    const set = await sign(setClaims('session-revoked', {}, { format: 'uri', uri: sub }));
    const replies = await Promise.all([push(instance, set), push(instance, set)]);
    expect(replies.map((r) => r.status).sort()).toEqual([202, 400]);
    expect(replies.find((r) => r.status === 400)?.json?.err).toBe('invalid_request');
    expect(audit.revocations.filter((r) => r.sub === sub)).toHaveLength(1);
  });

  it('no bearerTokenFile: no Authorization needed; a transmitter whose jwksUrl cannot be fetched gets 503 + Retry-After (not a refusal: it sends again)', async () => {
    const dead = await serveJwks(remoteIdp.jwks);
    await dead.close();
    const yaml = configYaml(
      pki,
      upstream.url,
      `${ROUTES}grants: { issuers: [{ issuer: "${JIT_ISS}", jwksFile: jit-jwks.json }] }
signals:
  listen: { address: 127.0.0.1, port: 0 }
  transmitters:
    - { issuer: "${IDP}", jwksFile: idp-jwks.json, audience: "${AUD}" }
    - { issuer: "${REMOTE_IDP}", jwksUrl: "${dead.url}", audience: "${AUD}" }
`,
    );
    const open = await startNamed(pki, 'signals-open.yaml', yaml);
    try {
      const sub = await workload();
      expect((await push(open.instance, await sign(setClaims('session-revoked', {}, { format: 'uri', uri: sub })), { bearer: null })).status).toBe(202);
      expect(open.instance.shared.revocations.holds('sub', sub)).toBe(true);
      const other = await workload();
      const unreachable = await push(open.instance, await sign({ ...setClaims('session-revoked', {}, { format: 'uri', uri: other }), iss: REMOTE_IDP }, { key: remoteIdp }), { bearer: null });
      expect([unreachable.status, unreachable.headers['retry-after']]).toEqual([503, '5']);
      expect(unreachable.json?.description).toMatch(/^the keys of https:\/\/idp-remote\.example\.org could not be loaded: /);
      expect(open.instance.shared.revocations.holds('sub', other)).toBe(false);
      expect(await metric(open.instance, 'portcullis_signals_received_total', { event: 'session-revoked', result: 'unavailable' })).toBe(1);
    } finally {
      await open.instance.close();
    }
  });

  it('an empty bearerTokenFile stops the start, naming the key (an empty token would let anyone in)', async () => {
    pki.write('empty-token', '\n');
    await expect(startNamed(pki, 'signals-empty.yaml', signalsYaml().replace('bearerTokenFile: ssf-token', 'bearerTokenFile: empty-token'))).rejects.toThrow(/^signals\.bearerTokenFile: .*empty-token is empty$/);
  });

  describe('with revocation.source: redis', () => {
    let redis: RedisServer;
    beforeAll(async () => {
      redis = await startRedis();
    });
    afterAll(async () => {
      await redis?.close();
    });

    it('a SET taken by one sidecar is on the bus: another sidecar, with no receiver, refuses the subject too', async () => {
      const stream = `s-${newJti('signals')}`;
      const bus = `revocation: { source: redis, url: "${redis.url}", stream: "${stream}", maxStaleness: 1s, retain: 1h, connectTimeout: 300ms }\n`;
      const a = await startNamed(pki, 'signals-a.yaml', signalsYaml(bus));
      const b = await startNamed(pki, 'signals-b.yaml', configYaml(pki, upstream.url, `${ROUTES}grants: { issuers: [{ issuer: "${JIT_ISS}", jwksFile: jit-jwks.json }], maxLifetime: 1h }\n${bus}`));
      try {
        expect(b.instance.signalsPort).toBeUndefined();
        const sub = await workload();
        const token = await grant(sub);
        const deadline = Date.now() + 10_000;
        while ((await post(b.instance, sub, { 'x-jit-grant': token })).status !== 200 && Date.now() < deadline) await sleep(20);
        expect(await post(a.instance, sub, { 'x-jit-grant': token })).toEqual({ status: 200, reason: undefined });
        expect((await push(a.instance, await sign(setClaims('session-revoked', {}, { format: 'uri', uri: sub })))).status).toBe(202);
        const sent = Date.now();
        while (!b.instance.shared.revocations.holds('sub', sub) && Date.now() - sent < 2_000) await sleep(5);
        expect(await post(b.instance, sub, { 'x-jit-grant': token })).toEqual({ status: 403, reason: 'grant_revoked' });
        expect(await post(a.instance, sub, { 'x-jit-grant': token })).toEqual({ status: 403, reason: 'grant_revoked' });
        const test = await redis.client();
        expect((await test.xRange(stream, '-', '+')).map((e) => e.message)).toEqual([{ sub, reason: 'caep session-revoked', by: IDP }]);
        // README: origin signals only where the SET arrived; the same reason and by everywhere.
        expect(b.audit.revocations.at(-1)).toMatchObject({ sub, origin: 'bus', reason: 'caep session-revoked', by: IDP });
        expect(a.audit.revocations.at(-1)).toMatchObject({ sub, origin: 'signals', reason: 'caep session-revoked', by: IDP });
      } finally {
        await a.instance.close();
        await b.instance.close();
      }
    });

    it('the bus down: 503 with Retry-After (the transmitter sends it again), applied here, and the jti not used up', async () => {
      const stream = `s-${newJti('signals-down')}`;
      const a = await startNamed(pki, 'signals-down.yaml', signalsYaml(`revocation: { source: redis, url: "${redis.url}", stream: "${stream}", maxStaleness: 1s, retain: 1h, connectTimeout: 300ms }\n`));
      try {
        const sub = await workload();
        const set = await sign(setClaims('session-revoked', {}, { format: 'uri', uri: sub }));
        await redis.stop();
        const down = await push(a.instance, set);
        expect([down.status, down.headers['retry-after']]).toEqual([503, '5']);
        expect(down.json?.description).toMatch(/revocation bus unreachable: .*; applied on this sidecar only/);
        expect(a.instance.shared.revocations.holds('sub', sub)).toBe(true);
        // start() can throw while redis-server is still binding (its probe's destroy() on a
        // client already closed); the server is spawned all the same, and the loop below waits.
        await redis.start().catch(() => undefined);
        const deadline = Date.now() + 10_000;
        let again = await push(a.instance, set);
        while (again.status === 503 && Date.now() < deadline) {
          await sleep(100);
          again = await push(a.instance, set);
        }
        expect(again.status).toBe(202);
        expect(await metric(a.instance, 'portcullis_signals_received_total', { event: 'session-revoked', result: 'unavailable' })).toBeGreaterThanOrEqual(1);
      } finally {
        await a.instance.close();
      }
    });
  });
});
