// The bench is not a test, but its harness must work: one tiny run of every case (HTTP/1.1,
// HTTP/2 and gRPC, Portcullis and its yardsticks, nginx when it is installed), side by side,
// producing one table per protocol, and issue 15's targets table computed from the same run
// (start-up and idle memory against bare Node, the connection-scale case, the ratios to nginx).
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect as connectH2, constants as h2 } from 'node:http2';
import { credentials, makeGenericClientConstructor, Metadata, type ServiceError } from '@grpc/grpc-js';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { findNginx } from '../../bench/load/nginx.ts';

const run = promisify(execFile);
const BENCH = fileURLToPath(new URL('../../bench/run.ts', import.meta.url));
const SERVICES = fileURLToPath(new URL('../../bench/load/h2-services.ts', import.meta.url));

const PORTCULLIS = ['direct', 'open', 'cached', 'uncached', 'remote', 'h2-direct', 'h2-open', 'h2-cached', 'grpc-direct', 'grpc-direct-tls', 'grpc-cached'];
const NGINX = ['nginx', 'nginx+auth_request', 'h2-nginx', 'grpc-nginx'];
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
    const { stdout } = await run(process.execPath, [BENCH, '--quick'], { timeout: 110_000 });
    const lines = stdout.split('\n');
    const headers = lines.filter((line) => line.startsWith('| case |'));
    expect(headers.length).toBe(3); // HTTP/1.1, HTTP/2, gRPC
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
      // No errors, no non-2xx, every gRPC call grpc-status 0: every privileged request was allowed.
      expect(cells[column('errors')], row).toBe('0');
      // CPU per request is read from /proc for the case's own processes.
      if (process.platform === 'linux') expect(Number(cells[column('CPU µs/req')]), row).toBeGreaterThan(0);
    }
    expect(stdout).toMatch(/^machine: \d+ × /m);

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
