// MCP through the sidecar with the real @modelcontextprotocol/sdk on both sides: the SDK client
// (Streamable HTTP transport, mTLS with a client SVID, a grant in its headers) against the SDK
// server behind Portcullis. Each tool call is its own decision, so an agent allowed to look up
// orders cannot refund one through the same endpoint; a streamed (SSE) answer is cut when its
// grant expires.
import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, fetch as undiciFetch } from 'undici';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { configYaml, createPki, type Issued, type Pki } from '../support/harness.ts';
import type { Instance } from '../../src/cli/instance.ts';
import { createSampleMcpServer } from '../../src/cli/sample-mcp-server.ts';
import { grantClaims, issuerKey, JIT_ISS, signToken, startNamed, type IssuerKey } from './decision-support.ts';
import type { memoryAuditLog } from '../../src/telemetry/audit.ts';

const AGENT = 'spiffe://example.org/ns/prod/sa/support-agent';
const ROUTES = `routes:
  - name: mcp
    match: { methods: [POST], path: /mcp }
    jsonrpc: true
    action: "mcp.{rpc.method}"
    resource: "mcp:{rpc.name}"
    sensitivity: low
  - name: mcp-session
    match: { methods: [GET, DELETE], path: /mcp }
    privileged: false
`;
const POLICY = `rules:
  - id: mcp-session
    effect: allow
    subjects: ["${AGENT}"]
    actions: [mcp.initialize, mcp.notifications.initialized, mcp.tools.list, mcp.ping]
  - id: lookups
    effect: allow
    subjects: ["${AGENT}"]
    actions: [mcp.tools.call]
    resources: ["mcp:lookup_order", "mcp:export_orders"]
`;

describe('MCP through the proxy (the real SDK client and server)', () => {
  let pki: Pki;
  let service: Server;
  let proxy: Instance;
  let audit: ReturnType<typeof memoryAuditLog>;
  let agent: Issued;
  let jit: IssuerKey;
  let dispatcher: Agent;

  beforeAll(async () => {
    service = await createSampleMcpServer({ exportSteps: 20, stepMs: 100 });
    await new Promise<void>((resolve) => service.listen(0, '127.0.0.1', resolve));
    const port = (service.address() as { port: number }).port;
    pki = await createPki();
    jit = await issuerKey('jit');
    pki.write('jit.json', jit.jwks);
    pki.write('policy.yaml', POLICY);
    const started = await startNamed(pki, 'mcp.yaml', configYaml(pki, `http://127.0.0.1:${port}`, `${ROUTES}grants: { issuers: [{ issuer: "${JIT_ISS}", jwksFile: jit.json }] }\n`));
    proxy = started.instance;
    audit = started.audit;
    agent = await pki.ca.svid('/ns/prod/sa/support-agent');
    dispatcher = new Agent({ connect: { ca: pki.ca.bundlePem, cert: agent.certPem, key: agent.keyPem, servername: 'localhost' } });
  });
  afterAll(async () => {
    await dispatcher.close();
    await proxy.close();
    service.closeAllConnections();
    await new Promise((resolve) => service.close(resolve));
    pki.cleanup();
  });

  /** An MCP client whose every request goes through our mTLS dispatcher, carrying `grant`. */
  const connect = async (grant?: string, reconnect = true): Promise<Client> => {
    const client = new Client({ name: 'support-agent', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(`https://localhost:${proxy.proxyPort}/mcp`), {
      fetch: ((url: string | URL, init?: RequestInit) => undiciFetch(url, { ...(init as object), dispatcher })) as unknown as typeof fetch,
      requestInit: grant ? { headers: { 'x-jit-grant': grant } } : undefined,
      // The SDK resumes a broken SSE stream by default; a cut stream must surface as the end it is.
      ...(reconnect ? {} : { reconnectionOptions: { maxRetries: 0, initialReconnectionDelay: 1000, maxReconnectionDelay: 1000, reconnectionDelayGrowFactor: 1 } }),
    });
    await client.connect(transport);
    return client;
  };
  const grantFor = (jti: string, expInMs: number) => {
    const now = Date.now();
    return signToken(grantClaims({ sub: AGENT, scope: 'mcp.initialize mcp.notifications.initialized mcp.tools.list mcp.tools.call', jti, iat: Math.floor(now / 1000) - 1, exp: (now + expInMs) / 1000 }), { key: jit.key, kid: 'jit' });
  };

  it('initializes, lists tools and makes an allowed call; each call is decided and audited with its method and tool', async () => {
    const client = await connect(await grantFor('mcp-1', 60_000));
    try {
      const tools = await client.listTools();
      expect(tools.tools.map((t) => t.name).sort()).toEqual(['export_orders', 'lookup_order', 'refund_order']);
      const result = await client.callTool({ name: 'lookup_order', arguments: { id: '42' } });
      expect(result.content).toEqual([{ type: 'text', text: 'order 42: 2 items, 59.90 EUR, paid' }]);
    } finally {
      await client.close();
    }
    const calls = audit.records.filter((r) => r.grant_jti === 'mcp-1');
    expect(calls.map((r) => `${r.rpc_method} ${r.rpc_name} ${r.decision}`)).toEqual(expect.arrayContaining(['initialize - allow', 'tools/list - allow', 'tools/call lookup_order allow']));
  });

  it('refuses refund_order for the same agent on the same endpoint, and the SDK client surfaces the reason', async () => {
    const client = await connect(await grantFor('mcp-2', 60_000));
    try {
      const error = await client.callTool({ name: 'refund_order', arguments: { id: '42' } }).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(error).toBeInstanceOf(Error);
      expect(error!.message).toContain('policy_denied');
      expect((error as Error & { code?: number }).code).toBe(403);
    } finally {
      await client.close();
    }
    expect(audit.records.find((r) => r.grant_jti === 'mcp-2' && r.rpc_name === 'refund_order')).toMatchObject({ decision: 'deny', reason: 'policy_denied', action: 'mcp.tools.call', resource: 'mcp:refund_order' });
  });

  it('a streamed (SSE) answer flows through unbuffered: progress notifications arrive before the result', async () => {
    const client = await connect(await grantFor('mcp-3', 60_000));
    try {
      const progress: number[] = [];
      const started = Date.now();
      let firstAt = 0;
      const result = await client.callTool({ name: 'export_orders', arguments: {} }, undefined, {
        onprogress: (p) => {
          if (progress.length === 0) firstAt = Date.now();
          progress.push(p.progress);
        },
      });
      expect(result.content).toEqual([{ type: 'text', text: 'exported 20 pages' }]);
      expect(progress.length).toBe(20);
      // The first notification arrived long before the answer ended (2 s): nothing was buffered.
      expect(firstAt - started).toBeLessThan(1000);
    } finally {
      await client.close();
    }
  });

  it('a streamed call is cut when its grant expires', async () => {
    const expMs = Date.now() + 1500;
    const client = await connect(await grantFor('mcp-4', expMs - Date.now()), false);
    try {
      const progress: number[] = [];
      const outcome = await client.callTool({ name: 'export_orders', arguments: {} }, undefined, { onprogress: (p) => progress.push(p.progress), timeout: 3000 }).then(
        () => 'finished',
        (e: unknown) => ({ at: Date.now(), message: (e as Error).message }),
      );
      expect(outcome).not.toBe('finished');
      expect(progress.length).toBeGreaterThan(0);
      expect(progress.length).toBeLessThan(20);
      const cut = audit.events.find((e) => e.grant_jti === 'mcp-4');
      expect(cut).toBeDefined();
      const cutAt = Date.parse(cut!.time);
      process.stdout.write(`cut lateness: MCP SSE answer at grant exp ${cutAt - expMs} ms (the SDK client reported it ${(outcome as { at: number }).at - expMs} ms after exp)\n`);
      expect(cutAt - expMs).toBeGreaterThanOrEqual(0);
      expect(cutAt - expMs).toBeLessThan(250);
    } finally {
      await client.close().catch(() => undefined);
    }
    expect(audit.events.find((e) => e.grant_jti === 'mcp-4')).toMatchObject({ event: 'stream_cut', reason: 'grant_expired', route: 'mcp' });
  });
});
