// A remote JWKS that goes away: tokens already verified keep working (served from the verified
// token cache, no fetch); a token whose key was never fetched is refused quickly, not hung.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from 'undici';
import { clientAgent, configYaml, createPki, get, startProxy, startUpstream, type Pki, type Upstream } from '../support/harness.ts';
import { grantClaims, issuerKey, REMOTE_ISS, serveJwks, signToken, SUPPORT_ID, type IssuerKey, type JwksServer } from './decision-support.ts';
import type { Instance } from '../../src/cli/instance.ts';

describe('remote JWKS outage', () => {
  let pki: Pki;
  let upstream: Upstream;
  let jwks: JwksServer;
  let key: IssuerKey;
  let proxy: Instance;
  let agent: Agent;

  beforeAll(async () => {
    pki = await createPki();
    upstream = await startUpstream();
    key = await issuerKey('remote-1');
    jwks = await serveJwks(key.jwks);
    pki.write('policy.yaml', 'rules:\n  - { id: r, effect: allow, subjects: ["spiffe://example.org/**"], actions: [orders.refund], resources: ["order:*"] }\n');
    proxy = await startProxy(pki, configYaml(pki, upstream.url, `routes:\n  - { name: refund, match: { methods: [POST], path: "/orders/{id}/refund" }, action: orders.refund, resource: "order:{id}", sensitivity: low }\ngrants: { issuers: [{ issuer: "${REMOTE_ISS}", jwksUrl: "${jwks.url}" }] }\ncache: { maxEntries: 0 }\n`));
    agent = clientAgent(pki.ca.bundlePem, await pki.ca.svid('/ns/prod/sa/support-bot'));
  });
  afterAll(async () => {
    await agent.close();
    await proxy.close();
    await upstream.close();
    pki.cleanup();
  });

  const refund = (token: string, id = '1') => get(agent, proxy.proxyPort, `/orders/${id}/refund`, { method: 'POST', headers: { 'x-jit-grant': token } });

  it('keeps serving verified tokens while the JWKS is unreachable, and refuses unknown keys promptly', async () => {
    const verified = await signToken(grantClaims({ iss: REMOTE_ISS, sub: SUPPORT_ID }), { key: key.key, kid: 'remote-1' });
    expect((await refund(verified)).status).toBe(200);
    const fetches = jwks.hits();
    await jwks.close();
    // The decision cache is off: every request is decided again, with the token from its cache.
    for (let i = 0; i < 5; i++) expect((await refund(verified, String(i))).status).toBe(200);
    expect(jwks.hits()).toBe(fetches);
    const other = await issuerKey('remote-2');
    const unknownKey = await signToken(grantClaims({ iss: REMOTE_ISS, sub: SUPPORT_ID }), { key: other.key, kid: 'remote-2' });
    const started = Date.now();
    const refused = await refund(unknownKey);
    expect([refused.status, refused.json().reason]).toEqual([401, 'grant_invalid']);
    expect(Date.now() - started).toBeLessThan(3000);
    expect((await refund(verified, '9')).status).toBe(200);
  });
});
