// The MCP service of the bench: the sample MCP server (src/cli/sample-mcp-server.ts, the real
// @modelcontextprotocol/sdk server over StreamableHTTPServerTransport) in the SDK's stateless
// JSON mode, so every `POST /mcp` is one independent `tools/call` with a JSON answer and no
// session to set up first (bench/README.md "MCP"). Plain HTTP on `port` (the service behind
// Portcullis) and, with `cert`, the same handler terminating mTLS itself on `tlsPort` (client
// certificate required): the `mcp-direct` case, as the HTTP/1.1 `direct` case is the upstream
// terminating mTLS itself.
// Usage: node mcp-service.ts '{"port":0,"cert":…,"key":…,"ca":…}'
import { createServer as createHttp, type Server } from 'node:http';
import { createServer as createHttps } from 'node:https';
import { readFileSync } from 'node:fs';
import { createSampleMcpHandler } from '../../src/cli/sample-mcp-server.ts';

interface Options {
  port: number;
  cert?: string;
  key?: string;
  ca?: string;
}

const options = JSON.parse(process.argv[2] ?? '{}') as Options;
const handler = await createSampleMcpHandler({ stateless: true });

const listen = (server: Server, port: number) =>
  new Promise<number>((resolve) => server.listen(port, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
const port = await listen(createHttp({ keepAliveTimeout: 60_000 }, handler), options.port);
const tlsPort = options.cert
  ? await listen(createHttps({ cert: readFileSync(options.cert), key: readFileSync(options.key!), ca: readFileSync(options.ca!), requestCert: true, rejectUnauthorized: true, keepAliveTimeout: 60_000 }, handler), 0)
  : undefined;
process.stdout.write(`${JSON.stringify({ port, tlsPort })}\n`);
process.on('SIGTERM', () => process.exit(0));
