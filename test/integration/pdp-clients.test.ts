// Each remote PDP client against a server speaking the real wire protocol: the exact request it
// receives, how answers map to allow/deny and TTL, and every fault becoming an error value.
import { createServer } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { AuthzenPdp } from '../../src/pdp/authzen.ts';
import { OpaPdp } from '../../src/pdp/opa.ts';
import { ExtAuthzPdp } from '../../src/pdp/ext-authz.ts';
import { GuardedPdp } from '../../src/pdp/guard.ts';
import { pdpError, type Pdp, type PdpError, type PdpInput } from '../../src/pdp/pdp.ts';
import { actionMatcher } from '../../src/pdp/patterns.ts';
import { json, startGrpcPdp, startJsonPdp } from '../support/fake-pdps.ts';

const NOW = Date.parse('2026-11-29T12:00:00.000Z');
const PEER = 'spiffe://example.org/ns/prod/sa/support-bot';
const CLAIMS = { iss: 'https://jit.example.org', sub: PEER, aud: 'spiffe://example.org/ns/prod/sa/orders-api', jti: 'g-1', iat: NOW / 1000, exp: NOW / 1000 + 600, scope: 'orders.refund', approver: 'alice' };

const input: PdpInput = {
  subject: PEER,
  posture: { sub: PEER, iatMs: NOW, expMs: NOW + 60_000, tier: 'high', posture: { trust: 'high', disk: 'encrypted' } },
  action: 'orders.refund',
  method: 'POST',
  resource: 'order:42',
  route: 'refund',
  sensitivity: 'high',
  grant: { jti: 'g-1', iss: CLAIMS.iss, sub: PEER, iatMs: NOW, expMs: NOW + 600_000, scope: actionMatcher(['orders.refund']), resources: undefined, intent: 'refund', certThumbprint: undefined, approver: 'alice', justification: undefined, claims: CLAIMS },
  intent: 'refund',
  requestId: 'req-1',
  nowMs: NOW,
  http: { path: '/orders/42/refund?x=1', host: 'orders.internal', headers: { 'content-type': 'application/json', 'x-jit-grant': 'TOKEN', 'x-device-posture': 'TOKEN2', x_intent: 'refund', 'x-intent': 'refund', 'x-custom': 'a' }, peerAddress: '127.0.0.1', peerPort: 5555 },
};

const EXPECTED_FACTS = {
  subject: { type: 'workload', id: PEER, properties: { posture: { trust: 'high', disk: 'encrypted' }, posture_tier: 'high' } },
  action: { name: 'orders.refund', properties: { method: 'POST' } },
  resource: { type: 'order', id: 'order:42', properties: { route: 'refund', sensitivity: 'high' } },
  context: { grant: CLAIMS, intent: 'refund', request_id: 'req-1', time: '2026-11-29T12:00:00.000Z' },
};

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

/** The PDP answers an error value (it never rejects for a fault: a failure is a value). */
async function answersError(pdp: Pdp, outcome?: string): Promise<PdpError> {
  const result = await pdp.evaluate(input);
  expect(result.kind).toBe('error');
  if (outcome) expect((result as PdpError).outcome).toBe(outcome);
  return result as PdpError;
}

describe('AuthZEN client', () => {
  it('POSTs the SPEC evaluation request to {url}/access/v1/evaluation and maps decision true', async () => {
    const server = await startJsonPdp((_body, _req, res) => json(res, 200, { decision: true }));
    const pdp = new AuthzenPdp(server.url + '/', 500);
    closers.push(() => server.close(), () => pdp.close());
    expect(await pdp.evaluate(input)).toMatchObject({ kind: 'allow', ttlMs: undefined });
    expect(server.received).toHaveLength(1);
    expect(server.received[0]!.path).toBe('/access/v1/evaluation');
    expect(server.received[0]!.headers['content-type']).toBe('application/json');
    expect(server.received[0]!.body).toEqual(EXPECTED_FACTS);
    expect(JSON.stringify(server.received[0]!.body)).not.toContain('TOKEN');
  });

  it('denies on false, a missing decision, or a non-boolean; reads max-age and no-store', async () => {
    const answers = [{ decision: false, context: { reason: 'outside change window' } }, {}, { decision: 'true' }];
    let next = 0;
    const server = await startJsonPdp((_b, _r, res) => json(res, 200, answers[next++], { 'cache-control': next === 1 ? 'max-age=5' : 'no-store' }));
    const pdp = new AuthzenPdp(server.url, 500);
    closers.push(() => server.close(), () => pdp.close());
    expect(await pdp.evaluate(input)).toEqual({ kind: 'deny', reason: 'policy_denied', detail: 'outside change window', ttlMs: 5000 });
    expect(await pdp.evaluate(input)).toMatchObject({ kind: 'deny', ttlMs: 0 });
    expect(await pdp.evaluate(input)).toMatchObject({ kind: 'deny' });
  });

  it('turns 500, invalid JSON, a slow answer, a reset mid-answer and a closed port into an error value', async () => {
    let mode = '';
    const server = await startJsonPdp((_b, _r, res) => {
      if (mode === '500') json(res, 500, { error: 'boom' });
      else if (mode === 'garbage') res.end('{"decision": tru');
      else if (mode === 'slow') setTimeout(() => json(res, 200, { decision: true }), 1000);
      else if (mode === 'reset') {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
        res.write('{"decision": ');
        setTimeout(() => res.socket?.destroy(), 20);
      }
    });
    const pdp = new AuthzenPdp(server.url, 200);
    closers.push(() => server.close(), () => pdp.close());
    for (const m of ['500', 'garbage', 'reset']) {
      mode = m;
      await answersError(pdp);
    }
    mode = 'slow';
    const started = Date.now();
    await answersError(pdp, 'timeout');
    expect(Date.now() - started).toBeLessThan(600);

    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const dead = new AuthzenPdp(`http://127.0.0.1:${port}`, 200);
    closers.push(() => dead.close());
    await answersError(dead, 'error');
  });
});

describe('OPA client', () => {
  it('POSTs {"input": facts} to the configured data path and reads boolean and object results', async () => {
    const results: unknown[] = [{ result: true }, { result: false }, { result: { allow: true, ttl: 3 } }, { result: { allow: false, reason: 'weekend freeze' } }, {}];
    let next = 0;
    const server = await startJsonPdp((_b, _r, res) => json(res, 200, results[next++]));
    const pdp = new OpaPdp(`${server.url}/v1/data/portcullis/allow`, 500);
    closers.push(() => server.close(), () => pdp.close());
    expect(await pdp.evaluate(input)).toMatchObject({ kind: 'allow' });
    expect(await pdp.evaluate(input)).toMatchObject({ kind: 'deny', reason: 'policy_denied' });
    expect(await pdp.evaluate(input)).toMatchObject({ kind: 'allow', ttlMs: 3000 });
    expect(await pdp.evaluate(input)).toMatchObject({ kind: 'deny', detail: 'weekend freeze' });
    // An undefined document denies (it is an answer, not an error).
    expect(await pdp.evaluate(input)).toMatchObject({ kind: 'deny', detail: 'opa: undefined document' });
    expect(server.received[0]!.path).toBe('/v1/data/portcullis/allow');
    expect(server.received[0]!.body).toEqual({ input: EXPECTED_FACTS });
  });

  it('refuses a result that is neither boolean nor object', async () => {
    const server = await startJsonPdp((_b, _r, res) => json(res, 200, { result: 'yes' }));
    const pdp = new OpaPdp(server.url, 500);
    closers.push(() => server.close(), () => pdp.close());
    await answersError(pdp, 'bad_answer');
  });
});

describe('Envoy ext_authz client', () => {
  it('sends an AttributeContext filled as Envoy would, without token headers', async () => {
    const server = await startGrpcPdp(() => ({ code: 0 }));
    const pdp = new ExtAuthzPdp(server.address, 1000, ['x-jit-grant', 'x-device-posture', 'x-intent'], 'spiffe://example.org/ns/prod/sa/orders-api');
    closers.push(() => server.close(), () => pdp.close());
    expect(await pdp.evaluate(input)).toMatchObject({ kind: 'allow' });
    const request = server.received[0] as { attributes: Record<string, unknown> };
    expect(request.attributes).toMatchObject({
      source: { principal: PEER, address: { socket_address: { address: '127.0.0.1', port_value: 5555 } } },
      destination: { principal: 'spiffe://example.org/ns/prod/sa/orders-api' },
      request: { http: { id: 'req-1', method: 'POST', path: '/orders/42/refund?x=1', host: 'orders.internal', scheme: 'https', protocol: 'HTTP/1.1', headers: { 'content-type': 'application/json', 'x-custom': 'a' } }, time: { seconds: String(NOW / 1000) } },
      context_extensions: { action: 'orders.refund', resource: 'order:42', route: 'refund', sensitivity: 'high', intent: 'refund', grant: JSON.stringify(CLAIMS), posture: JSON.stringify({ trust: 'high', disk: 'encrypted' }) },
    });
    const headers = (request.attributes.request as { http: { headers: Record<string, string> } }).http.headers;
    expect(Object.keys(headers).sort()).toEqual(['content-type', 'x-custom']);
  });

  it('denies any non-OK status and reports UNAVAILABLE or a missed deadline as an error value', async () => {
    let answer: { code: number; message?: string } | grpc.ServiceError = { code: grpc.status.PERMISSION_DENIED, message: 'nope' };
    const server = await startGrpcPdp(() => answer);
    const pdp = new ExtAuthzPdp(server.address, 300, [], 'spiffe://example.org/x');
    closers.push(() => server.close(), () => pdp.close());
    expect(await pdp.evaluate(input)).toMatchObject({ kind: 'deny', reason: 'policy_denied', detail: 'ext_authz: PERMISSION_DENIED nope' });
    answer = Object.assign(new Error('down'), { code: grpc.status.UNAVAILABLE, details: 'down', metadata: new grpc.Metadata() }) as grpc.ServiceError;
    await answersError(pdp, 'error');
    const dead = new ExtAuthzPdp('127.0.0.1:1', 300, [], 'spiffe://example.org/x');
    closers.push(() => dead.close());
    const started = Date.now();
    await answersError(dead);
    expect(Date.now() - started).toBeLessThan(800);
  });

  it('answers an error value, not a rejection, once its client is closed (a reload closed it mid-call)', async () => {
    const pdp = new ExtAuthzPdp('127.0.0.1:1', 300, [], 'spiffe://example.org/x');
    await pdp.close();
    expect((await answersError(pdp, 'error')).detail).toContain('Channel has been shut down');
  });
});

describe('guard: in-flight bound and circuit breaker', () => {
  it('opens after consecutive failures, fails fast while open, and closes after a good probe', async () => {
    let healthy = false;
    let calls = 0;
    const inner: Pdp = {
      kind: 'test',
      evaluate: async () => {
        calls++;
        if (!healthy) return pdpError('error', 'down');
        return { kind: 'allow', detail: undefined, ttlMs: undefined };
      },
    };
    const guard = new GuardedPdp(inner, { maxInFlight: 2, failureThreshold: 3, openMs: 100, maxOpenMs: 1000 });
    for (let i = 0; i < 3; i++) await answersError(guard, 'error');
    expect(guard.circuit).toBe('open');
    await answersError(guard, 'circuit_open');
    expect(calls).toBe(3);
    await new Promise((r) => setTimeout(r, 120));
    await answersError(guard, 'error'); // the probe fails: open again, for longer
    expect(calls).toBe(4);
    healthy = true;
    await new Promise((r) => setTimeout(r, 120));
    await answersError(guard, 'circuit_open'); // doubled pause not over yet
    await new Promise((r) => setTimeout(r, 120));
    expect(await guard.evaluate(input)).toMatchObject({ kind: 'allow' });
    expect(guard.circuit).toBe('closed');
    expect(guard.healthy).toBe(true);
  });

  it('fails fast past maxInFlight instead of queueing', async () => {
    const inner: Pdp = { kind: 'test', evaluate: () => new Promise((resolve) => setTimeout(() => resolve({ kind: 'allow', detail: undefined, ttlMs: undefined }), 100)) };
    const guard = new GuardedPdp(inner, { maxInFlight: 2, failureThreshold: 5, openMs: 100, maxOpenMs: 100 });
    const results = await Promise.all([guard.evaluate(input), guard.evaluate(input), guard.evaluate(input)]);
    expect(results.map((r) => r.kind)).toEqual(['allow', 'allow', 'error']);
    expect((results[2] as PdpError).outcome).toBe('overloaded');
  });
});
