// The grant floor (SPEC "The decision, per request", step 2): a high or critical route demands a
// grant whatever the PDP, refused with 401 grant_required before any PDP is asked; the embedded
// policy's tiers only add to it. Real signed grants, real mTLS peers, a real proxy, and for the
// remote case a real AuthZEN server that counts what reaches it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from 'undici';
import type { Instance } from '../../src/cli/instance.ts';
import { memoryAuditLog } from '../../src/telemetry/audit.ts';
import { clientAgent, configYaml, createPki, get, startProxy, startUpstream, type Pki, type Upstream } from '../support/harness.ts';
import { json, startJsonPdp, type JsonPdpServer } from '../support/fake-pdps.ts';
import { grantClaims, issuerKey, JIT_ISS, metric, signToken, startNamed, type IssuerKey } from './decision-support.ts';

// No tiers at all: before the floor, such a policy let every privileged route pass without a grant.
const POLICY = `rules:
  - id: support-anything
    effect: allow
    subjects: ["spiffe://example.org/ns/prod/sa/support-*"]
    actions: ["*"]
`;

const ROUTES = `routes:
  - name: high
    match: { methods: [POST], path: /high }
    action: orders.refund
    resource: order
    sensitivity: high
  - name: critical
    match: { methods: [POST], path: /critical }
    action: orders.refund
    resource: order
    sensitivity: critical
  - name: medium
    match: { methods: [POST], path: /medium }
    action: orders.refund
    resource: order
    sensitivity: medium
  - name: low
    match: { methods: [POST], path: /low }
    action: orders.refund
    resource: order
    sensitivity: low
defaultRoute: { action: orders.refund, resource: order, sensitivity: critical }
grants: { issuers: [{ issuer: "${JIT_ISS}", jwksFile: jit-jwks.json }] }
`;

describe('the grant floor: high and critical routes need a grant, whatever the PDP', () => {
  let pki: Pki;
  let upstream: Upstream;
  let agent: Agent;
  let jit: IssuerKey;
  let embedded: Instance;
  let remote: Instance;
  let authzen: JsonPdpServer;
  const audit = memoryAuditLog();

  const post = async (instance: Instance, path: string, grant?: string) => {
    const reply = await get(agent, instance.proxyPort, path, { method: 'POST', headers: grant ? { 'x-jit-grant': grant } : {} });
    return { status: reply.status, reason: reply.status === 200 ? undefined : (JSON.parse(reply.text) as { reason: string }).reason };
  };
  const pdpCalls = (instance: Instance) => metric(instance, 'portcullis_pdp_requests_total');
  /** AuthZEN evaluations for real requests (the readiness probe also asks, at start). */
  const realCalls = () => authzen.received.filter((r) => !JSON.stringify(r.body).includes('readiness-probe')).length;

  beforeAll(async () => {
    pki = await createPki();
    upstream = await startUpstream();
    jit = await issuerKey('jit-1');
    pki.write('jit-jwks.json', jit.jwks);
    pki.write('policy.yaml', POLICY);
    embedded = await startProxy(pki, configYaml(pki, upstream.url, ROUTES), { audit });
    authzen = await startJsonPdp((_body, _req, res) => json(res, 200, { decision: true }));
    const yaml = configYaml(pki, upstream.url, ROUTES).replace('pdp: { policyFile: policy.yaml }', `pdp: { kind: authzen, url: "${authzen.url}" }`);
    remote = (await startNamed(pki, 'remote.yaml', yaml)).instance;
    agent = clientAgent(pki.ca.bundlePem, await pki.ca.svid('/ns/prod/sa/support-bot'));
  });
  afterAll(async () => {
    await agent.close();
    await embedded.close();
    await remote.close();
    await authzen.close();
    await upstream.close();
    pki.cleanup();
  });

  it('embedded PDP with no tiers: no grant on a high or critical route (or a critical defaultRoute) is 401 grant_required, and the PDP is never asked', async () => {
    const before = await pdpCalls(embedded);
    for (const path of ['/high', '/critical', '/unrouted']) expect(await post(embedded, path)).toEqual({ status: 401, reason: 'grant_required' });
    expect(await pdpCalls(embedded)).toBe(before);
    // Audited as a local decision, with the floor as its detail.
    expect(audit.records.at(-1)).toMatchObject({ route: 'default', decision: 'deny', reason: 'grant_required', source: 'local', pdp_detail: 'sensitivity critical needs a grant' });
    expect(await metric(embedded, 'portcullis_decisions_total', { route: 'high', reason: 'grant_required', source: 'local' })).toBe(1);
  });

  it('embedded PDP: low and medium routes go to the policy, which decides (no tier here asks for a grant)', async () => {
    const before = await pdpCalls(embedded);
    expect(await post(embedded, '/low')).toEqual({ status: 200, reason: undefined });
    expect(await post(embedded, '/medium')).toEqual({ status: 200, reason: undefined });
    expect(await pdpCalls(embedded)).toBe(before + 2);
  });

  it('embedded PDP: with a grant, a high route is decided by the policy', async () => {
    const grant = await signToken(grantClaims(), { key: jit.key, kid: jit.kid });
    const before = await pdpCalls(embedded);
    expect(await post(embedded, '/high', grant)).toEqual({ status: 200, reason: undefined });
    expect(await pdpCalls(embedded)).toBe(before + 1);
  });

  it('remote (AuthZEN) PDP that allows everything: no grant on high/critical is 401 grant_required, and no request reaches the PDP', async () => {
    const before = realCalls();
    const counted = await pdpCalls(remote);
    for (const path of ['/high', '/critical', '/unrouted']) expect(await post(remote, path)).toEqual({ status: 401, reason: 'grant_required' });
    expect(realCalls()).toBe(before);
    expect(await pdpCalls(remote)).toBe(counted);
    // The PDP still decides the rest: a low route without a grant, a high one with a grant.
    expect(await post(remote, '/low')).toEqual({ status: 200, reason: undefined });
    expect(await post(remote, '/high', await signToken(grantClaims(), { key: jit.key, kid: jit.kid }))).toEqual({ status: 200, reason: undefined });
    expect(realCalls()).toBe(before + 2);
  });

  it('a bad grant is still a bad grant: grant_invalid, not grant_required', async () => {
    expect(await post(embedded, '/high', 'not-a-jwt')).toEqual({ status: 401, reason: 'grant_invalid' });
  });
});
