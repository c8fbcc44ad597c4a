// The bench is not a test, but its harness must work: one tiny run of every case (HTTP/1.1,
// HTTP/2, gRPC and MCP, Portcullis and its yardsticks, nginx when it is installed), side by side,
// producing one table per protocol, and issue 15's targets table computed from the same run
// (start-up and idle memory against bare Node, the connection-scale case, the ratios to nginx).
// The MCP cases' service is the real SDK server, and the load generator counts an MCP call only
// when it is answered with the tool's result.
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect as connectH2, constants as h2 } from 'node:http2';
import { credentials, makeGenericClientConstructor, Metadata, type ServiceError } from '@grpc/grpc-js';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, fetch as undiciFetch } from 'undici';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { findNginx } from '../../bench/load/nginx.ts';
import { MCP_ANSWER_TEXT, MCP_BODY, MCP_HEADERS, MCP_PATH, mcpAnswerProblem, probeMcp } from '../../bench/load/mcp-call.ts';
import { createPki } from '../support/harness.ts';

const run = promisify(execFile);
const BENCH = fileURLToPath(new URL('../../bench/run.ts', import.meta.url));
const SERVICES = fileURLToPath(new URL('../../bench/load/h2-services.ts', import.meta.url));
const MCP_SERVICE = fileURLToPath(new URL('../../bench/load/mcp-service.ts', import.meta.url));
const LOADGEN = fileURLToPath(new URL('../../bench/load/loadgen.ts', import.meta.url));

const PORTCULLIS = ['direct', 'open', 'cached', 'uncached', 'remote', 'h2-direct', 'h2-open', 'h2-cached', 'grpc-direct', 'grpc-direct-tls', 'grpc-cached', 'mcp-direct', 'mcp-open', 'mcp-cached'];
const NGINX = ['nginx', 'nginx+auth_request', 'h2-nginx', 'grpc-nginx', 'mcp-nginx'];
// Issue 15's figures, in its order; each one's row and whether it needs nginx.
const FIGURES: [string, boolean][] = [
  ['idle RSS after start (src/, embedded PDP)', false],
  ['RSS under the 2-connection load', false],
  ['start to listening (src/)', false],
  ['CPU per cached authorized HTTP/1.1 request ÷ nginx proxying with no authorization', true],
  ['the same ÷ nginx + auth_request (per CPU)', true],
  ['CPU per cached gRPC unary call ÷ nginx grpc_pass', true],
  ['10,000 idle mTLS keep-alive connections, extra RSS', false],
  ['p99 cached ÷ p99 nginx at the same concurrency', true],
];

describe('bench harness', () => {
  it('runs each case once with tiny load and prints a table per protocol', { timeout: 120_000 }, async () => {
    const nginx = findNginx() !== undefined;
    const { stdout } = await run(process.execPath, [BENCH, '--quick'], { timeout: 110_000 }).catch((error: Error & { stdout?: string }) => {
      // The bench exits 1 when a case completed no request: its table says which.
      throw new Error(`${error.message}\n${error.stdout ?? ''}`);
    });
    const lines = stdout.split('\n');
    const headers = lines.filter((line) => line.startsWith('| case |'));
    expect(headers.length).toBe(4); // HTTP/1.1, HTTP/2, gRPC, MCP
    expect(new Set(headers).size).toBe(1); // one set of columns, so the tables read side by side
    const header = headers[0]!.split('|').map((c) => c.trim());
    const column = (name: string) => header.indexOf(name);
    const rows = new Map(lines.filter((line) => /^\| [a-z0-9_+-]+ \| /.test(line) && !line.startsWith('| case |') && !line.startsWith('| figure |')).map((row) => [row.split('|')[1]!.trim(), row]));
    // grpc-cached is measured only if a probe call through the proxy's h2c upstream succeeds (the
    // bench prints "h2c upstream not available" otherwise); this proxy has one, so it must be there.
    const expected = [...PORTCULLIS, ...(nginx ? NGINX : [])];
    expect([...rows.keys()].sort()).toEqual(expected.sort());
    if (!nginx) expect(stdout).toMatch(/^note: nginx not found/m);
    for (const row of rows.values()) {
      const cells = row.split('|').map((c) => c.trim());
      expect(Number(cells[column('req/s')]), row).toBeGreaterThan(0);
      // No errors, no non-2xx, every gRPC call grpc-status 0, every MCP call answered with the
      // tool's result: every privileged request was allowed.
      expect(cells[column('errors')], row).toBe('0');
      // CPU per request is read from /proc for the case's own processes.
      if (process.platform === 'linux') expect(Number(cells[column('CPU µs/req')]), row).toBeGreaterThan(0);
    }
    expect(stdout).toMatch(/^machine: \d+ × /m);
    expect(stdout).toMatch(/^MCP: \/ direct is to mcp-direct/m);

    // The targets table: one row per figure of the issue, each measured in this run (or, for
    // the nginx ratios where nginx is missing, "not measured" with the reason), five cells each.
    const start = lines.indexOf('| figure | measured | target | moonshot | met? |');
    expect(start, 'targets table header').toBeGreaterThan(-1);
    expect(lines[start - 2]).toMatch(/^Issue 15 targets \(Portcullis from src\//);
    const targetRows = lines.slice(start + 2).filter((line, i, all) => all.slice(0, i + 1).every((l) => l.startsWith('| '))).map((row) => row.split('|').slice(1, -1).map((c) => c.trim()));
    expect(targetRows.map((cells) => cells[0])).toEqual(FIGURES.map(([figure]) => figure));
    for (const [i, [, needsNginx]] of FIGURES.entries()) {
      const cells = targetRows[i]!;
      expect(cells.length, cells[0]).toBe(5);
      expect(cells.every((cell) => cell.length > 0), cells[0]).toBe(true);
      if (needsNginx && !nginx) expect(cells[1], cells[0]).toMatch(/^not measured: .*nginx/);
      else expect(cells[1], cells[0]).not.toMatch(/not measured/);
    }
    // The quick run holds 50 idle connections (not 10,000): all open, none failed, and not judged.
    const idle = targetRows[6]!;
    expect(idle[1]).toMatch(/ for 50 open \(/);
    expect(idle[1]).not.toMatch(/failed|closed by the server/);
    expect(idle[4]).toMatch(/^– \(50 of 50 connections open/);
  });

  describe('the MCP cases\' service (bench/load/mcp-service.ts)', () => {
    let pki: Awaited<ReturnType<typeof createPki>>;
    let child: ReturnType<typeof spawn>;
    let ports: { port: number; tlsPort: number };
    let files: { ca: string; cert: string; key: string };
    let dispatcher: Agent;

    beforeAll(async () => {
      pki = await createPki();
      const client = await pki.ca.svid('/ns/prod/sa/support-bot');
      files = { ca: pki.write('bundle.pem', pki.ca.bundlePem), cert: pki.write('client.pem', client.certPem), key: pki.write('client_key.pem', client.keyPem) };
      const tls = { cert: pki.write('svid.pem', pki.server.certPem), key: pki.write('svid_key.pem', pki.server.keyPem), ca: files.ca };
      child = spawn(process.execPath, [MCP_SERVICE, JSON.stringify({ port: 0, ...tls })], { stdio: ['ignore', 'pipe', 'inherit'] });
      const [line] = (await once(child.stdout!, 'data')) as [Buffer];
      ports = JSON.parse(line.toString()) as typeof ports;
      dispatcher = new Agent({ connect: { ca: pki.ca.bundlePem, cert: client.certPem, key: client.keyPem, servername: 'localhost' } });
    });
    afterAll(async () => {
      await dispatcher?.close();
      child?.kill('SIGTERM');
      pki?.cleanup();
    });

    it('is the real SDK server, stateless: the SDK client initializes, lists the tools and calls lookup_order over mTLS, with no session', { timeout: 20_000 }, async () => {
      const sessions: (string | null)[] = [];
      const client = new Client({ name: 'bench-check', version: '1.0.0' });
      const transport = new StreamableHTTPClientTransport(new URL(`https://localhost:${ports.tlsPort}${MCP_PATH}`), {
        fetch: (async (url: string | URL, init?: RequestInit) => {
          const response = await undiciFetch(url, { ...(init as object), dispatcher });
          sessions.push(response.headers.get('mcp-session-id'));
          return response;
        }) as unknown as typeof fetch,
      });
      await client.connect(transport);
      expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(['export_orders', 'lookup_order', 'refund_order']);
      const result = await client.callTool({ name: 'lookup_order', arguments: { id: '42' } });
      expect(result.isError).toBeFalsy();
      expect(result.content).toEqual([{ type: 'text', text: MCP_ANSWER_TEXT }]);
      await client.close();
      expect(sessions.length).toBeGreaterThanOrEqual(3);
      expect(sessions.every((s) => s === null)).toBe(true); // stateless: no Mcp-Session-Id, ever
    });

    it('answers the bench\'s call, with no initialize, as JSON; the probe accepts only the tool\'s result', { timeout: 20_000 }, async () => {
      for (let i = 0; i < 2; i++) {
        const response = await undiciFetch(`https://localhost:${ports.tlsPort}${MCP_PATH}`, { method: 'POST', headers: MCP_HEADERS, body: MCP_BODY, dispatcher });
        expect(response.headers.get('content-type')).toMatch(/^application\/json/);
        expect(mcpAnswerProblem(response.status, await response.text())).toBeUndefined();
      }
      expect(await probeMcp({ port: ports.tlsPort, headers: {}, files })).toBeUndefined();
      // No session, so no server event stream either.
      const get = await undiciFetch(`https://localhost:${ports.tlsPort}${MCP_PATH}`, { headers: { accept: 'text/event-stream' }, dispatcher });
      expect(get.status).toBe(405);
      expect(((await get.json()) as { error: { code: number } }).error.code).toBe(-32000);
      // A JSON-RPC error also comes with 200: the probe says what it got instead.
      expect(mcpAnswerProblem(200, JSON.stringify({ jsonrpc: '2.0', id: 1, error: { code: -32602, message: 'Tool no_such_tool not found' } }))).toBe('JSON-RPC error: Tool no_such_tool not found');
      expect(mcpAnswerProblem(200, JSON.stringify({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: 'MCP error' }], isError: true } }))).toMatch(/^not the tool's result/);
    });

    it('the load generator sends the body and counts a call only when it is answered with the tool\'s result', { timeout: 30_000 }, async () => {
      const loadgen = async (body: string) => {
        const options = { port: ports.tlsPort, path: MCP_PATH, method: 'POST', headers: MCP_HEADERS, body, expect: MCP_ANSWER_TEXT, ...files, connections: 2, durationMs: 300, warmupMs: 100 };
        const { stdout } = await run(process.execPath, [LOADGEN, JSON.stringify(options)], { timeout: 20_000 });
        return JSON.parse(stdout) as { requests: number; non2xx: number; errors: number };
      };
      const good = await loadgen(MCP_BODY);
      expect(good.requests).toBeGreaterThan(0);
      expect(good).toMatchObject({ non2xx: 0, errors: 0 });
      // The same request for a tool the server does not have: 200 every time, never the result.
      const wrong = await loadgen(MCP_BODY.replace('lookup_order', 'no_such_tool'));
      expect(wrong.requests).toBeGreaterThan(0);
      expect(wrong.non2xx).toBe(wrong.requests);
      expect(wrong.errors).toBe(0);
    });
  });

  it('the gRPC cases\' service is real gRPC: a grpc-js client gets its answer and grpc-status 0', { timeout: 20_000 }, async () => {
    const child = spawn(process.execPath, [SERVICES, JSON.stringify({ kind: 'grpc', port: 0 })], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const [line] = (await once(child.stdout, 'data')) as [Buffer];
      const { port } = JSON.parse(line.toString()) as { port: number };
      const bytes = (b: Buffer) => b;
      const Client = makeGenericClientConstructor({ Refund: { path: '/bench.v1.Orders/Refund', requestStream: false, responseStream: false, requestSerialize: bytes, requestDeserialize: bytes, responseSerialize: bytes, responseDeserialize: bytes } }, 'Orders');
      const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
      const answer = await new Promise<Buffer>((resolve, reject) => {
        (client as unknown as Record<string, (r: Buffer, m: Metadata, cb: (e: ServiceError | null, v?: Buffer) => void) => void>).Refund!(Buffer.from([0x0a, 0x02, 0x34, 0x32]), new Metadata(), (error, value) => (error ? reject(error) : resolve(value!)));
      });
      client.close();
      expect(answer.length).toBe(100); // field 1, 98 bytes: the same 100 bytes as the HTTP answer
      expect(answer.subarray(0, 2)).toEqual(Buffer.from([0x0a, 98]));
    } finally {
      child.kill('SIGTERM');
    }
  });

  it('the gRPC service survives clients that reset calls and drop sessions mid-call (a full run lost its gRPC table to that)', { timeout: 20_000 }, async () => {
    const child = spawn(process.execPath, [SERVICES, JSON.stringify({ kind: 'grpc', port: 0 })], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    try {
      const [line] = (await once(child.stdout, 'data')) as [Buffer];
      const { port } = JSON.parse(line.toString()) as { port: number };
      const message = Buffer.from([0, 0, 0, 0, 4, 0x0a, 0x02, 0x34, 0x32]);
      // Whole requests, half of them reset at once, then the session torn down, as a load
      // generator that exits with calls in flight does.
      for (let round = 0; round < 20 && child.exitCode === null; round++) {
        const session = connectH2(`http://127.0.0.1:${port}`);
        session.on('error', () => undefined);
        for (let i = 0; i < 50; i++) {
          const call = session.request({ ':method': 'POST', ':path': '/bench.v1.Orders/Refund', 'content-type': 'application/grpc', te: 'trailers' });
          call.on('error', () => undefined);
          call.end(message);
          if (i % 2) call.close(h2.NGHTTP2_CANCEL);
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
        session.destroy();
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(child.exitCode, stderr).toBe(null);
      // And it still answers.
      const session = connectH2(`http://127.0.0.1:${port}`);
      const call = session.request({ ':method': 'POST', ':path': '/bench.v1.Orders/Refund', 'content-type': 'application/grpc', te: 'trailers' });
      const trailers = new Promise<Record<string, unknown>>((resolve) => call.once('trailers', resolve));
      call.resume();
      call.end(message);
      expect((await trailers)['grpc-status']).toBe('0');
      session.close();
    } finally {
      child.kill('SIGTERM');
    }
  });
});
