// JSON-RPC routes (SPEC "JSON-RPC and MCP routes"), in raw HTTP: every call decided on its own
// with the route's templates filled from it, a batch forwarded only if every call is allowed, the
// body forwarded byte for byte, and every bad body refused before anything reaches the service.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from 'undici';
import { clientAgent, configYaml, createPki, get, startUpstream, type Issued, type Pki, type Upstream } from '../support/harness.ts';
import { rawSession } from '../support/raw-tls.ts';
import type { Instance } from '../../src/cli/instance.ts';
import { metric, startNamed } from './decision-support.ts';
import type { memoryAuditLog } from '../../src/telemetry/audit.ts';

const ROUTES = `routes:
  - name: mcp
    match: { methods: [POST], path: /mcp }
    jsonrpc: true
    action: "mcp.{rpc.method}"
    resource: "mcp:{rpc.name}"
    sensitivity: low
limits: { maxJsonRpcBytes: 4096, headersTimeout: 1s }
`;
const POLICY = `rules:
  - { id: session, effect: allow, subjects: ["spiffe://example.org/ns/prod/sa/agent"], actions: [mcp.initialize, mcp.tools.list, mcp.notifications.initialized], resources: ["mcp:-"] }
  - { id: lookup, effect: allow, subjects: ["spiffe://example.org/ns/prod/sa/agent"], actions: [mcp.tools.call], resources: ["mcp:lookup_order"] }
`;

describe('JSON-RPC routes', () => {
  let pki: Pki;
  let upstream: Upstream;
  let proxy: Instance;
  let audit: ReturnType<typeof memoryAuditLog>;
  let agent: Issued;
  let client: Agent;
  /** sha256 of each body the service received. */
  const bodies: string[] = [];

  beforeAll(async () => {
    pki = await createPki();
    upstream = await startUpstream((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        bodies.push(createHash('sha256').update(body).digest('hex'));
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { bytes: body.length, sha256: bodies.at(-1) } }));
      });
    });
    pki.write('policy.yaml', POLICY);
    const started = await startNamed(pki, 'rpc.yaml', configYaml(pki, upstream.url, ROUTES));
    proxy = started.instance;
    audit = started.audit;
    agent = await pki.ca.svid('/ns/prod/sa/agent');
    client = clientAgent(pki.ca.bundlePem, agent);
  });
  afterAll(async () => {
    await client.close();
    await proxy.close();
    await upstream.close();
    pki.cleanup();
  });

  const post = (body: string | Buffer, contentType = 'application/json') => get(client, proxy.proxyPort, '/mcp', { method: 'POST', headers: { 'content-type': contentType }, body });
  const sha = (body: string) => createHash('sha256').update(body).digest('hex');

  it('decides an allowed call with its method and tool, and forwards the body byte for byte', async () => {
    // Odd spacing, key order and escapes: whatever the client sent, the service gets the same bytes.
    const body = '{ "params" : {"name":"lookup_order","arguments":{"id":"42\\u00e9"}}, "method":"tools/call","jsonrpc":"2.0","id":7 }';
    const answer = await post(body);
    expect(answer.status).toBe(200);
    expect(bodies.at(-1)).toBe(sha(body));
    const line = audit.records.at(-1)!;
    expect(line).toMatchObject({ action: 'mcp.tools.call', resource: 'mcp:lookup_order', decision: 'allow', rpc_method: 'tools/call', rpc_name: 'lookup_order', rpc_id: 7 });
  });

  it('refuses a call the policy does not allow, with the SPEC status and a JSON-RPC error body naming the reason', async () => {
    const before = bodies.length;
    const answer = await post('{"jsonrpc":"2.0","id":"r1","method":"tools/call","params":{"name":"refund_order","arguments":{"id":42}}}');
    expect(answer.status).toBe(403);
    expect(answer.headers['content-type']).toBe('application/json');
    expect(answer.json()).toEqual({ jsonrpc: '2.0', id: 'r1', error: { code: -32001, message: 'policy_denied', data: { reason: 'policy_denied', request_id: answer.headers['x-request-id'] } } });
    expect(bodies.length).toBe(before);
    expect(audit.records.at(-1)).toMatchObject({ action: 'mcp.tools.call', resource: 'mcp:refund_order', decision: 'deny', reason: 'policy_denied', rpc_id: 'r1' });
  });

  it('forwards a batch only if every call in it is allowed; else refuses it whole, one error per refused call', async () => {
    const allowed = JSON.stringify([
      { jsonrpc: '2.0', id: 1, method: 'tools/list' },
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'lookup_order' } },
      { jsonrpc: '2.0', method: 'notifications/initialized' },
    ]);
    expect((await post(allowed)).status).toBe(200);
    expect(bodies.at(-1)).toBe(sha(allowed));
    const before = bodies.length;
    const mixed = JSON.stringify([
      { jsonrpc: '2.0', id: 1, method: 'tools/list' },
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'refund_order' } },
    ]);
    const refused = await post(mixed);
    expect(refused.status).toBe(403);
    expect(refused.json()).toEqual([{ jsonrpc: '2.0', id: 2, error: { code: -32001, message: 'policy_denied', data: { reason: 'policy_denied', request_id: refused.headers['x-request-id'] } } }]);
    expect(bodies.length).toBe(before);
  });

  it.each([
    ['not JSON', 'hello', 400],
    ['not JSON-RPC 2.0', '{"jsonrpc":"1.0","method":"tools/list","id":1}', 400],
    ['an empty batch', '[]', 400],
    ['a batch over 100 calls', JSON.stringify(Array.from({ length: 101 }, () => ({ jsonrpc: '2.0', method: 'a' }))), 400],
    ['a method that is not a string', '{"jsonrpc":"2.0","method":5,"id":3}', 400],
    ['nesting over 64', `{"jsonrpc":"2.0","method":"tools/list","id":1,"params":{"a":${'['.repeat(70)}${']'.repeat(70)}}}`, 400],
    ['duplicate keys that change meaning', '{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"refund_order"}}', 400],
    ['a body over limits.maxJsonRpcBytes', JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: { pad: 'x'.repeat(5000) } }), 413],
  ])('refuses %s before anything reaches the service', async (_what, body, status) => {
    const before = bodies.length;
    const answer = await post(body);
    expect(answer.status).toBe(status);
    const json = answer.json();
    expect('reason' in json ? json.reason : (json as { error: { data: { reason: string } } }).error.data.reason).toBe('bad_request');
    expect(bodies.length).toBe(before);
  });

  it('answers a bad call whose id can be read with a JSON-RPC error body carrying that id', async () => {
    const answer = await post('{"jsonrpc":"2.0","method":5,"id":3}');
    expect(answer.json()).toMatchObject({ jsonrpc: '2.0', id: 3, error: { code: -32600, message: 'bad_request' } });
  });

  it('refuses a wrong content type (415), counted, with nothing forwarded', async () => {
    const before = await metric(proxy, 'portcullis_bad_requests_total', { reason: 'jsonrpc' });
    const answer = await post('{"jsonrpc":"2.0","method":"tools/list","id":1}', 'text/plain');
    expect(answer.status).toBe(415);
    expect(answer.json()).toMatchObject({ reason: 'bad_request' });
    expect(await metric(proxy, 'portcullis_bad_requests_total', { reason: 'jsonrpc' })).toBe(before + 1);
  });

  it('refuses two Content-Type fields: the service might read the other one', async () => {
    const before = bodies.length;
    const raw = await import('../support/raw-tls.ts');
    const body = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}';
    const answer = await raw.rawRequest(proxy.proxyPort, pki.ca.bundlePem, agent, `POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
    expect(raw.parseRaw(answer).status).toBe(400);
    expect(bodies.length).toBe(before);
  });

  it('a body that stops mid-way gets 408 within limits.headersTimeout and the connection closes', async () => {
    const session = await rawSession(proxy.proxyPort, pki.ca.bundlePem, agent);
    const started = Date.now();
    session.socket.write('POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"jsonrpc":"2.0",');
    const closed = await session.closedWithin(3000);
    expect(closed).toBe(true);
    expect(session.text()).toMatch(/^HTTP\/1\.1 408 /);
    expect(Date.now() - started).toBeLessThan(2500);
  });

  it('counts decisions per tool, with at most 64 tool labels per route (the rest, and anything not a tool name, as "other")', async () => {
    expect(await metric(proxy, 'portcullis_rpc_decisions_total', { route: 'mcp', tool: 'lookup_order', decision: 'allow' })).toBeGreaterThanOrEqual(1);
    expect(await metric(proxy, 'portcullis_rpc_decisions_total', { route: 'mcp', tool: 'refund_order', decision: 'deny' })).toBeGreaterThanOrEqual(1);
    const calls = (from: number, n: number) => Array.from({ length: n }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: `t${from + i}` } }));
    for (let i = 0; i < 80; i += 20) await post(JSON.stringify(calls(i, 20)));
    await post('{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///etc/passwd"}}');
    const text = await proxy.metrics.registry.metrics();
    const tools = new Set([...text.matchAll(/^portcullis_rpc_decisions_total\{route="mcp",tool="([^"]+)"/gm)].map((m) => m[1]));
    expect(tools.size).toBeLessThanOrEqual(65);
    expect(tools.has('other')).toBe(true);
    expect(text).not.toContain('passwd');
  });

  it('an unprivileged path on the same service is still an ordinary route (GET /mcp is not read)', async () => {
    expect((await get(client, proxy.proxyPort, '/mcp')).status).toBe(403); // no route for GET here: no_route
  });
});
