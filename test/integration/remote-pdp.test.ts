// Remote PDPs through the proxy: AuthZEN, OPA and ext_authz decide real requests; faults give
// 503 pdp_unavailable within the timeout and are never cached; the proxy recovers by itself;
// a PDP's max-age caps the cache; /readyz follows PDP health.
import { createServer } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from 'undici';
import { clientAgent, configYaml, createPki, get, startUpstream, type Issued, type Pki, type Upstream } from '../support/harness.ts';
import { json, startGrpcPdp, startJsonPdp, type JsonPdpServer } from '../support/fake-pdps.ts';
import { admin, grantClaims, issuerKey, JIT_ISS, metric, signToken, sleep, startNamed, SUPPORT_ID, type IssuerKey } from './decision-support.ts';
import type { Instance } from '../../src/cli/instance.ts';

const ROUTES = `routes:
  - name: refund
    match: { methods: [POST], path: "/orders/{id}/refund" }
    action: orders.refund
    resource: "order:{id}"
    sensitivity: high
`;

/** What a PDP received for real requests (the readiness probe also asks it, at start). */
function realCalls<T>(received: T[]): T[] {
  return received.filter((r) => !JSON.stringify(r).includes('readiness-probe'));
}

function remoteConfig(pki: Pki, upstream: Upstream, pdp: string): string {
  return configYaml(pki, upstream.url, `${ROUTES}grants: { issuers: [{ issuer: "${JIT_ISS}", jwksFile: jit-jwks.json }] }\ncache: { allowTtl: 30s, denyTtl: 2s }\n`).replace('pdp: { policyFile: policy.yaml }', `pdp: ${pdp}`);
}

describe('remote PDPs through the proxy', () => {
  let pki: Pki;
  let upstream: Upstream;
  let client: Issued;
  let agent: Agent;
  let jit: IssuerKey;
  let grant: string;
  const instances: Instance[] = [];

  beforeAll(async () => {
    pki = await createPki();
    upstream = await startUpstream();
    client = await pki.ca.svid('/ns/prod/sa/support-bot');
    agent = clientAgent(pki.ca.bundlePem, client);
    jit = await issuerKey('jit-1');
    pki.write('jit-jwks.json', jit.jwks);
    grant = await signToken(grantClaims({ sub: SUPPORT_ID }), { key: jit.key, kid: 'jit-1' });
  });
  afterAll(async () => {
    for (const instance of instances) await instance.close();
    await agent.close();
    await upstream.close();
    pki.cleanup();
  });

  async function start(name: string, pdp: string): Promise<Instance> {
    const { instance } = await startNamed(pki, name, remoteConfig(pki, upstream, pdp));
    instances.push(instance);
    return instance;
  }

  const refund = (instance: Instance, id: string, token = grant) => get(agent, instance.proxyPort, `/orders/${id}/refund`, { method: 'POST', headers: { 'x-jit-grant': token }, body: '{}' });

  it('AuthZEN decides; its max-age=5 caps the cache: no call inside 5 s, exactly one after', { timeout: 20_000 }, async () => {
    let decision = true;
    const pdp = await startJsonPdp((_b, _r, res) => json(res, 200, { decision }, { 'cache-control': 'max-age=5' }));
    const instance = await start('authzen.yaml', `{ kind: authzen, url: "${pdp.url}", timeout: 300ms }`);
    try {
      expect((await refund(instance, '1')).status).toBe(200);
      expect(realCalls(pdp.received)).toHaveLength(1);
      expect(realCalls(pdp.received)[0]!.path).toBe('/access/v1/evaluation');
      expect(realCalls(pdp.received)[0]!.body).toMatchObject({ subject: { type: 'workload', id: SUPPORT_ID }, action: { name: 'orders.refund', properties: { method: 'POST' } }, resource: { type: 'order', id: 'order:1', properties: { route: 'refund', sensitivity: 'high' } } });
      const started = Date.now();
      while (Date.now() - started < 4000) {
        expect((await refund(instance, '1')).status).toBe(200);
        await sleep(200);
      }
      expect(realCalls(pdp.received)).toHaveLength(1);
      await sleep(Math.max(0, 5200 - (Date.now() - started)));
      decision = false;
      const after = await refund(instance, '1');
      expect(after.status).toBe(403);
      expect(after.json().reason).toBe('policy_denied');
      expect(realCalls(pdp.received)).toHaveLength(2);
    } finally {
      await pdp.close();
    }
  });

  it('OPA decides with {"input": …}; an undefined document denies', async () => {
    let answer: unknown = { result: { allow: true } };
    const pdp = await startJsonPdp((_b, _r, res) => json(res, 200, answer));
    const instance = await start('opa.yaml', `{ kind: opa, url: "${pdp.url}/v1/data/portcullis/allow", timeout: 300ms }`);
    try {
      expect((await refund(instance, '2')).status).toBe(200);
      expect(realCalls(pdp.received)[0]!.path).toBe('/v1/data/portcullis/allow');
      expect(realCalls(pdp.received)[0]!.body).toMatchObject({ input: { subject: { id: SUPPORT_ID }, context: { grant: { sub: SUPPORT_ID, scope: 'orders.refund' } } } });
      answer = {};
      const denied = await refund(instance, '3');
      expect([denied.status, denied.json().reason]).toEqual([403, 'policy_denied']);
    } finally {
      await pdp.close();
    }
  });

  it('ext_authz decides over gRPC; the Check request carries the peer and no token header', async () => {
    let code = grpc.status.OK;
    const pdp = await startGrpcPdp(() => ({ code }));
    const instance = await start('ext-authz.yaml', `{ kind: ext-authz, address: "${pdp.address}", timeout: 500ms }`);
    try {
      expect((await refund(instance, '4')).status).toBe(200);
      const request = realCalls(pdp.received)[0] as { attributes: { source: { principal: string }; request: { http: { path: string; headers: Record<string, string> } }; context_extensions: Record<string, string> } };
      expect(request.attributes.source.principal).toBe(SUPPORT_ID);
      expect(request.attributes.request.http.path).toBe('/orders/4/refund');
      expect(request.attributes.request.http.headers['x-jit-grant']).toBeUndefined();
      expect(JSON.stringify(request)).not.toContain(grant);
      expect(request.attributes.context_extensions).toMatchObject({ action: 'orders.refund', resource: 'order:4', route: 'refund', sensitivity: 'high' });
      code = grpc.status.PERMISSION_DENIED;
      expect((await refund(instance, '5')).json().reason).toBe('policy_denied');
    } finally {
      await pdp.close();
    }
  });

  it('every fault is a 503 pdp_unavailable within the timeout plus a margin, never cached, and the proxy recovers by itself', { timeout: 30_000 }, async () => {
    let mode = 'ok';
    const pdp: JsonPdpServer = await startJsonPdp((_b, _r, res) => {
      if (mode === 'ok') json(res, 200, { decision: true });
      else if (mode === '500') json(res, 500, { error: 'boom' });
      else if (mode === 'garbage') res.end('not json');
      else if (mode === 'slow') setTimeout(() => json(res, 200, { decision: true }), 2000);
      else if (mode === 'reset') {
        res.writeHead(200, { 'content-length': '50' });
        res.write('{"decision"');
        setTimeout(() => res.socket?.destroy(), 10);
      }
    });
    const instance = await start('faults.yaml', `{ kind: authzen, url: "${pdp.url}", timeout: 200ms }`);
    try {
      let id = 100;
      for (const m of ['500', 'garbage', 'slow', 'reset']) {
        mode = m;
        const started = Date.now();
        const res = await refund(instance, String(id));
        expect([m, res.status, res.json().reason]).toEqual([m, 503, 'pdp_unavailable']);
        expect(Date.now() - started).toBeLessThan(700);
        // The circuit may open after repeated failures; let it reach a probe before the next fault.
        await sleep(1100);
      }
      expect(await metric(instance, 'portcullis_decisions_total', { reason: 'pdp_unavailable' })).toBe(4);
      mode = 'ok';
      await expect.poll(async () => (await refund(instance, String(id))).status, { timeout: 5000, interval: 200 }).toBe(200);
      id++;
      // The PDP stops listening altogether: 503 quickly, then back once it listens again.
      const port = Number(new URL(pdp.url).port);
      await pdp.close();
      const started = Date.now();
      expect((await refund(instance, String(id))).status).toBe(503);
      expect(Date.now() - started).toBeLessThan(700);
      // Rebind the original port so the configured URL works again.
      const revived = createServer((req, res) => {
        req.resume();
        req.on('end', () => json(res, 200, { decision: true }));
      });
      await new Promise<void>((resolve) => revived.listen(port, '127.0.0.1', resolve));
      try {
        await expect.poll(async () => (await refund(instance, String(id))).status, { timeout: 8000, interval: 250 }).toBe(200);
      } finally {
        revived.closeAllConnections();
        revived.close();
      }
      expect(await metric(instance, 'portcullis_pdp_requests_total', { outcome: 'allow' })).toBeGreaterThanOrEqual(2);
    } finally {
      await pdp.close().catch(() => undefined);
    }
  });

  it('gRPC UNAVAILABLE is a 503 pdp_unavailable', async () => {
    const pdp = await startGrpcPdp(() => Object.assign(new Error('down'), { code: grpc.status.UNAVAILABLE, details: 'down', metadata: new grpc.Metadata() }) as grpc.ServiceError);
    const instance = await start('ext-authz-down.yaml', `{ kind: ext-authz, address: "${pdp.address}", timeout: 300ms }`);
    try {
      const res = await refund(instance, '200');
      expect([res.status, res.json().reason]).toEqual([503, 'pdp_unavailable']);
    } finally {
      await pdp.close();
    }
  });

  it('/readyz is 503 until the PDP has answered, then 200, and 503 again while the circuit is open', { timeout: 30_000 }, async () => {
    let up = false;
    const pdp = await startJsonPdp((_b, _r, res) => (up ? json(res, 200, { decision: false }) : json(res, 500, {})));
    const instance = await start('ready.yaml', `{ kind: authzen, url: "${pdp.url}", timeout: 200ms }`);
    try {
      expect((await admin(instance, 'GET', '/readyz')).status).toBe(503);
      up = true;
      await expect.poll(async () => (await admin(instance, 'GET', '/readyz')).status, { timeout: 6000, interval: 200 }).toBe(200);
      up = false;
      for (let i = 0; i < 6; i++) await refund(instance, `r${i}`);
      const notReady = await admin(instance, 'GET', '/readyz');
      expect(notReady.status).toBe(503);
      expect(String(notReady.json.reason)).toContain('circuit open');
      up = true;
      await expect.poll(async () => (await admin(instance, 'GET', '/readyz')).status, { timeout: 8000, interval: 200 }).toBe(200);
    } finally {
      await pdp.close();
    }
  });
});
