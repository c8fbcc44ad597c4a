// The demo's MCP server (and the tests'): a real @modelcontextprotocol/sdk server over the
// Streamable HTTP transport, stateful (Mcp-Session-Id), with three tools an agent might be
// granted one at a time: lookup_order (read), refund_order (write), and export_orders, which
// streams progress notifications over server-sent events for a few seconds. With `stateless`
// (the load bench's service, bench/load/mcp-service.ts) every POST stands alone: no session, a
// JSON answer instead of an event stream.
// Loaded only by the demo and tests: the SDK is a development dependency. The demo's sample
// service mounts the handler on its own port (`/mcp`); the tests run it as a server of its own.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export interface SampleMcpOptions {
  readonly exportSteps?: number;
  readonly stepMs?: number;
  /**
   * The SDK's stateless mode (`sessionIdGenerator: undefined`, `enableJsonResponse: true`): each
   * POST is one independent exchange answered with `application/json`; GET and DELETE are 405.
   * The SDK refuses to reuse a stateless transport ("Create a new transport per request"), and
   * a server connects to one transport at a time, so each POST builds both, as the SDK's
   * `simpleStatelessStreamableHttp` example does.
   */
  readonly stateless?: boolean;
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

export async function createSampleMcpServer(options: SampleMcpOptions = {}): Promise<Server> {
  return createServer(await createSampleMcpHandler(options));
}

/**
 * The SDK and a builder of the sample's McpServer with its three tools, loaded on first use (the
 * SDK is a development dependency). Exported for the bench, which times a build per request
 * (bench/load/mcp-stateless-cost.ts).
 */
export async function loadSampleMcp(options: SampleMcpOptions = {}) {
  const { McpServer } = await import('@modelcontextprotocol/sdk/server/mcp.js');
  const { StreamableHTTPServerTransport } = await import('@modelcontextprotocol/sdk/server/streamableHttp.js');
  const { isInitializeRequest } = await import('@modelcontextprotocol/sdk/types.js');
  const { z } = await import('zod');
  const steps = options.exportSteps ?? 10;
  const stepMs = options.stepMs ?? 500;

  const build = () => {
    const server = new McpServer({ name: 'orders', version: '1.0.0' });
    server.registerTool('lookup_order', { description: 'Look up an order by id', inputSchema: { id: z.string() } }, async ({ id }) => ({
      content: [{ type: 'text' as const, text: `order ${id}: 2 items, 59.90 EUR, paid` }],
    }));
    server.registerTool('refund_order', { description: 'Refund an order', inputSchema: { id: z.string() } }, async ({ id }) => ({
      content: [{ type: 'text' as const, text: `order ${id} refunded` }],
    }));
    server.registerTool('export_orders', { description: 'Export every order, reporting progress' }, async (extra) => {
      const token = extra._meta?.progressToken;
      for (let i = 1; i <= steps; i++) {
        await new Promise((resolve) => setTimeout(resolve, stepMs));
        if (token !== undefined) await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: i, total: steps } });
      }
      return { content: [{ type: 'text' as const, text: `exported ${steps} pages` }] };
    });
    return server;
  };
  return { build, StreamableHTTPServerTransport, isInitializeRequest };
}

/** The MCP endpoint as a request handler: `/mcp` is served, anything else is 404. */
export async function createSampleMcpHandler(options: SampleMcpOptions = {}): Promise<RequestHandler> {
  const { build, StreamableHTTPServerTransport, isInitializeRequest } = await loadSampleMcp(options);

  if (options.stateless) {
    const handleStateless = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
      if (!(req.url ?? '').startsWith('/mcp')) {
        res.writeHead(404).end();
        return;
      }
      if (req.method !== 'POST') {
        res.writeHead(405, { allow: 'POST', 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32000, message: 'method not allowed: this server is stateless' } }));
        return;
      }
      const server = build();
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      res.on('close', () => {
        void transport.close();
        void server.close();
      });
      await server.connect(transport);
      // The transport reads and parses the body itself.
      await transport.handleRequest(req, res);
    };
    return (req, res) => {
      handleStateless(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    };
  }

  const transports = new Map<string, InstanceType<typeof StreamableHTTPServerTransport>>();
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (!(req.url ?? '').startsWith('/mcp')) {
      res.writeHead(404).end();
      return;
    }
    const session = req.headers['mcp-session-id'];
    let transport = typeof session === 'string' ? transports.get(session) : undefined;
    let body: unknown;
    if (req.method === 'POST') {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      if (transport === undefined && isInitializeRequest(body)) {
        const fresh: InstanceType<typeof StreamableHTTPServerTransport> = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => void transports.set(id, fresh),
        });
        fresh.onclose = () => {
          if (fresh.sessionId) transports.delete(fresh.sessionId);
        };
        await build().connect(fresh);
        transport = fresh;
      }
    }
    if (transport === undefined) {
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32000, message: 'no valid session' } }));
      return;
    }
    await transport.handleRequest(req, res, body);
  };
  return (req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  };
}
