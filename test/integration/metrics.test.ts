// /metrics over the admin listener: every SPEC metric is there, with bounded labels only (route
// names, codes, reasons, outcomes, sources — never a path, a SPIFFE ID or a token).
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { clientAgent, configYaml, createPki, DEFAULT_ROUTES, get, startUpstream, type Pki, type Upstream } from '../support/harness.ts';
import { grantClaims, issuerKey, JIT_ISS, signToken, startNamed } from './decision-support.ts';
import type { Instance } from '../../src/cli/instance.ts';

const SPEC_METRICS = [
  'portcullis_requests_total',
  'portcullis_decisions_total',
  'portcullis_decision_duration_seconds',
  'portcullis_pdp_requests_total',
  'portcullis_pdp_duration_seconds',
  'portcullis_cache_entries',
  'portcullis_cache_hits_total',
  'portcullis_cache_misses_total',
  'portcullis_cache_evictions_total',
  'portcullis_grant_expired_total',
  'portcullis_revocations_total',
  'portcullis_tls_handshake_failures_total',
  'portcullis_svid_expiry_timestamp_seconds',
  'portcullis_upstream_duration_seconds',
  'portcullis_streams_cut_total',
  'portcullis_shadow_denials_total',
  'portcullis_cache_ttl_bound_total',
  'process_cpu_seconds_total',
  'process_resident_memory_bytes',
  'nodejs_eventloop_lag_seconds',
];

const ALLOWED_LABELS: Record<string, RegExp> = {
  route: /^(none|default|[A-Za-z0-9_.-]{1,64})$/,
  // an HTTP status, or a grpc-status (0-16) for protocol="grpc"
  code: /^(\d{3}|\d{1,2})$/,
  protocol: /^(http1|h2|grpc)$/,
  decision: /^(allow|deny)$/,
  reason: /^[a-z_]+$/,
  source: /^(cache|pdp|coalesced|local)$/,
  bound: /^(pdp|allow_ttl|route_ttl|grant_exp|posture)$/,
  outcome: /^[a-z_]+$/,
  result: /^(ok|error|timeout)$/,
  version: /^(\d+\.\d+\.\d+[0-9A-Za-z.+-]*|unknown)$/,
  le: /^[0-9.e+-]+|\+Inf$/,
};

describe('/metrics', () => {
  let pki: Pki;
  let upstream: Upstream;
  let instance: Instance;
  let token: string;

  beforeAll(async () => {
    pki = await createPki();
    upstream = await startUpstream();
    const jit = await issuerKey('k');
    pki.write('jit.json', jit.jwks);
    pki.write('policy.yaml', 'rules:\n  - { id: r, effect: allow, subjects: ["spiffe://example.org/**"], actions: [orders.refund], resources: ["order:*"] }\n');
    ({ instance } = await startNamed(pki, 'metrics.yaml', configYaml(pki, upstream.url, DEFAULT_ROUTES) + `grants: { issuers: [{ issuer: "${JIT_ISS}", jwksFile: jit.json }] }\n`));
    token = await signToken(grantClaims({ sub: 'spiffe://example.org/ns/prod/sa/web' }), { key: jit.key, kid: 'k' });
    const agent = clientAgent(pki.ca.bundlePem, await pki.ca.svid('/ns/prod/sa/web'));
    await get(agent, instance.proxyPort, '/orders/1');
    await get(agent, instance.proxyPort, '/orders/1/refund', { method: 'POST', headers: { 'x-jit-grant': token } });
    await get(agent, instance.proxyPort, '/orders/1/refund', { method: 'POST', headers: { 'x-jit-grant': token } });
    await get(agent, instance.proxyPort, '/orders/2/refund', { method: 'POST', headers: { 'x-jit-grant': 'garbage' } });
    await get(agent, instance.proxyPort, '/nothing/here');
    await agent.close();
    await new Promise<void>((resolve) => {
      const socket = connect({ port: instance.proxyPort, host: '127.0.0.1', ca: pki.ca.bundlePem, servername: 'localhost' });
      socket.on('error', () => resolve());
      socket.on('close', () => resolve());
      socket.resume();
    });
  });
  afterAll(async () => {
    await instance.close();
    await upstream.close();
    pki.cleanup();
  });

  it('serves every SPEC metric in the Prometheus text format', async () => {
    const response = await request(`http://127.0.0.1:${instance.adminPort}/metrics`);
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toContain('text/plain');
    const text = await response.body.text();
    for (const name of SPEC_METRICS) expect(text, name).toMatch(new RegExp(`^# TYPE ${name} `, 'm'));
    expect(text).toMatch(/^portcullis_decisions_total\{route="refund",decision="allow",reason="allowed",source="pdp"\} 1$/m);
    expect(text).toMatch(/^portcullis_decisions_total\{route="refund",decision="allow",reason="allowed",source="cache"\} 1$/m);
    expect(text).toMatch(/^portcullis_decisions_total\{route="refund",decision="deny",reason="grant_invalid",source="local"\} 1$/m);
    expect(text).toMatch(/^portcullis_requests_total\{route="none",code="403",protocol="http1"\} 1$/m);
    expect(text).toMatch(/^portcullis_tls_handshake_failures_total\{reason="no_client_cert"\} 1$/m);
  });

  it('has only bounded labels: no path, SPIFFE ID or token in any label value', async () => {
    const text = await instance.metrics.registry.metrics();
    for (const line of text.split('\n')) {
      if (line.startsWith('#') || !line.includes('{')) continue;
      const labels = line.slice(line.indexOf('{') + 1, line.lastIndexOf('}'));
      for (const [, key, value] of labels.matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)) {
        if (line.startsWith('portcullis_')) {
          expect(Object.keys(ALLOWED_LABELS), line).toContain(key);
          expect(value, line).toMatch(ALLOWED_LABELS[key!]!);
        }
        expect(value, line).not.toMatch(/spiffe:|eyJ|\/orders/);
      }
    }
    expect(text).not.toContain(token.slice(-20));
  });
});
