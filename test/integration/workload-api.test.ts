// identity.source: workload-api against a fake Workload API speaking the real protocol: the
// proxy starts with the streamed SVID, rotates when a new one is pushed, keeps the last good set
// when a bad one arrives, and reconnects when the agent restarts.
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientAgent, createPki, DEFAULT_ROUTES, get, startUpstream, DevCa, type Pki, type Upstream } from '../support/harness.ts';
import { startFakeWorkloadApi, svidResponse, type FakeWorkloadApi } from '../support/fake-workload-api.ts';
import { loadConfig } from '../../src/config/load.ts';
import { startInstance, type Instance } from '../../src/cli/instance.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { memoryAuditLog } from '../../src/telemetry/audit.ts';

function serverFingerprint(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', servername: 'localhost', ca, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.destroy();
    });
    socket.on('error', reject);
  });
}

describe('identity from the SPIFFE Workload API', () => {
  let pki: Pki;
  let partner: DevCa;
  let upstream: Upstream;
  let api: FakeWorkloadApi;
  let instance: Instance;

  beforeAll(async () => {
    pki = await createPki();
    partner = await DevCa.create('partner.org');
    upstream = await startUpstream();
    api = await startFakeWorkloadApi(`${pki.dir}/agent.sock`, svidResponse(pki.server, pki.ca.bundlePem, { 'partner.org': partner.bundlePem }));
    const file = pki.write('wl.yaml', `listen: { address: 127.0.0.1, port: 0 }
identity:
  source: workload-api
  workloadApiSocket: "${api.socket}"
  trustDomains: [example.org, partner.org]
  allow: ["spiffe://example.org/ns/prod/**", "spiffe://partner.org/**"]
upstream: { url: "${upstream.url}" }
pdp: { policyFile: policy.yaml }
admin: { address: 127.0.0.1, port: 0 }
${DEFAULT_ROUTES}`);
    instance = await startInstance(loadConfig(file), { logger: createLogger('silent'), audit: memoryAuditLog(), configFile: file });
  });
  afterAll(async () => {
    await instance.close();
    await api.close();
    await upstream.close();
    pki.cleanup();
  });

  it('serves with the streamed SVID and trusts the streamed bundles, federated ones included', async () => {
    const { X509Certificate } = await import('node:crypto');
    expect(await serverFingerprint(instance.proxyPort, pki.ca.bundlePem)).toBe(new X509Certificate(pki.server.certPem).fingerprint256);
    const local = clientAgent(pki.ca.bundlePem, await pki.ca.svid('/ns/prod/sa/web'));
    const remote = clientAgent(pki.ca.bundlePem, await partner.svid('/ns/billing'));
    try {
      expect((await get(local, instance.proxyPort, '/orders/1')).status).toBe(200);
      const federated = await get(remote, instance.proxyPort, '/orders/1');
      expect(federated.status).toBe(200);
      expect((federated.json().headers as Record<string, string>)['x-forwarded-client-cert']).toContain('URI=spiffe://partner.org/ns/billing');
    } finally {
      await local.close();
      await remote.close();
    }
  });

  it('rotates when the agent pushes a new SVID, and keeps the last good set on a bad push', async () => {
    const { X509Certificate } = await import('node:crypto');
    const rotated = await pki.ca.svid('/ns/prod/sa/orders-api', { dns: ['localhost'] });
    api.push(svidResponse(rotated, pki.ca.bundlePem, { 'partner.org': partner.bundlePem }));
    const want = new X509Certificate(rotated.certPem).fingerprint256;
    await expect.poll(() => serverFingerprint(instance.proxyPort, pki.ca.bundlePem), { timeout: 5000, interval: 100 }).toBe(want);
    // A push whose key does not match its certificate, and one missing the partner bundle.
    const other = await pki.ca.svid('/ns/prod/sa/orders-api', { dns: ['localhost'] });
    const mismatched = svidResponse(other, pki.ca.bundlePem, { 'partner.org': partner.bundlePem });
    mismatched.svids[0]!.x509_svid_key = svidResponse(rotated, pki.ca.bundlePem).svids[0]!.x509_svid_key;
    const before = await instance.metrics.registry.metrics();
    api.push(mismatched);
    api.push(svidResponse(other, pki.ca.bundlePem));
    await expect.poll(async () => {
      const text = await instance.metrics.registry.metrics();
      return Number(/portcullis_svid_reloads_total\{result="error"\} (\d+)/.exec(text)?.[1] ?? 0) - Number(/portcullis_svid_reloads_total\{result="error"\} (\d+)/.exec(before)?.[1] ?? 0);
    }, { timeout: 5000, interval: 100 }).toBe(2);
    expect(await serverFingerprint(instance.proxyPort, pki.ca.bundlePem)).toBe(want);
  });

  it('reconnects after the agent ends its streams, and takes what it sends next', async () => {
    const { X509Certificate } = await import('node:crypto');
    api.endStreams();
    const after = await pki.ca.svid('/ns/prod/sa/orders-api', { dns: ['localhost'] });
    api.push(svidResponse(after, pki.ca.bundlePem, { 'partner.org': partner.bundlePem }));
    const want = new X509Certificate(after.certPem).fingerprint256;
    await expect.poll(() => serverFingerprint(instance.proxyPort, pki.ca.bundlePem), { timeout: 8000, interval: 200 }).toBe(want);
    expect(api.refused).toBe(0);
  });

  it('refuses to start without an SVID, naming the socket and the problem', async () => {
    const file = pki.write('wl-missing.yaml', `identity:
  source: workload-api
  workloadApiSocket: "unix://${pki.dir}/nobody-here.sock"
  trustDomains: [example.org]
  allow: ["spiffe://example.org/**"]
upstream: { url: "${upstream.url}" }
pdp: { policyFile: policy.yaml }
listen: { address: 127.0.0.1, port: 0 }
admin: { address: 127.0.0.1, port: 0 }
`);
    await expect(startInstance(loadConfig(file), { logger: createLogger('silent'), audit: memoryAuditLog(), svidWaitMs: 1000 })).rejects.toThrow(/identity\.workloadApiSocket unix:\/\/.*nobody-here\.sock: no SVID within 1000 ms/);
  });
});
