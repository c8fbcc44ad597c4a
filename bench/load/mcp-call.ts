// The one MCP call every MCP case of the bench sends (bench/README.md "MCP"): `tools/call` of the
// sample server's read tool, `lookup_order`, as an MCP client sends it over Streamable HTTP
// (POST /mcp, JSON body, Accept listing both JSON and SSE as the transport requires), and what
// counts as answered: 200 with a JSON-RPC result carrying the tool's text, not a JSON-RPC error
// (which the SDK also sends with 200) and not a tool error (`isError`, also a result).
import { request } from 'node:https';
import { readFileSync } from 'node:fs';

export const MCP_PATH = '/mcp';
export const MCP_ID = 1;
export const MCP_BODY = JSON.stringify({ jsonrpc: '2.0', id: MCP_ID, method: 'tools/call', params: { name: 'lookup_order', arguments: { id: '42' } } });
export const MCP_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2025-06-18',
};
/** The tool's answer: the load generator counts a call as answered only if its body holds it. */
export const MCP_ANSWER_TEXT = 'order 42: 2 items, 59.90 EUR, paid';

/** Undefined when `status` and `body` are the call's result, else what is wrong with them. */
export function mcpAnswerProblem(status: number, body: string): string | undefined {
  if (status !== 200) return `HTTP ${status}: ${body.slice(0, 200)}`;
  let answer: { jsonrpc?: unknown; id?: unknown; result?: { content?: { text?: unknown }[]; isError?: unknown }; error?: { message?: unknown } };
  try {
    answer = JSON.parse(body) as typeof answer;
  } catch {
    return `HTTP 200 but not JSON: ${body.slice(0, 200)}`;
  }
  if (answer.error !== undefined) return `JSON-RPC error: ${String(answer.error.message)}`;
  if (answer.jsonrpc !== '2.0' || answer.id !== MCP_ID) return `not the answer to call ${MCP_ID}: ${body.slice(0, 200)}`;
  if (answer.result?.isError === true || answer.result?.content?.[0]?.text !== MCP_ANSWER_TEXT) return `not the tool's result: ${body.slice(0, 200)}`;
  return undefined;
}

/** One MCP call over mTLS before the load: undefined when it was answered with the tool's result. */
export function probeMcp(t: { port: number; headers: Record<string, string>; files: { ca: string; cert: string; key: string } }, timeoutMs = 10_000): Promise<string | undefined> {
  return new Promise((resolve) => {
    const body = Buffer.from(MCP_BODY);
    const req = request({ host: '127.0.0.1', port: t.port, path: MCP_PATH, method: 'POST', headers: { ...MCP_HEADERS, ...t.headers, 'content-length': body.length }, servername: 'localhost', ca: readFileSync(t.files.ca), cert: readFileSync(t.files.cert), key: readFileSync(t.files.key), agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve(mcpAnswerProblem(res.statusCode!, Buffer.concat(chunks).toString('utf8'))));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (error) => resolve(error.message));
    req.end(body);
  });
}
