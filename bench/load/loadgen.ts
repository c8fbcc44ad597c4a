// A closed-loop HTTP/1.1 load generator over mTLS: N keep-alive TLS connections, each sending the
// next request as soon as the previous response is complete, for a fixed duration. Presents a
// client certificate (wrk cannot). Prints one JSON line: requests/s, latency percentiles, errors.
// One fixed request, built once: a head, or (with `body`) a head with its content-length and the
// body, sent as one write per request either way. With `expect`, an answer counts as ok only if
// its body holds that text (the MCP cases: a JSON-RPC result, not an error answered with 200).
// Usage: node loadgen.ts '{"port":8443,"path":"/x","headers":{},"ca":"...","cert":"...","key":"...","connections":32,"durationMs":5000}'
//        (optional: "method":"POST","body":"{...}","expect":"text the answer must hold")
import { connect, type TLSSocket } from 'node:tls';
import { readFileSync } from 'node:fs';
import { Recorder, type WindowOptions } from './measure.ts';

interface Options extends WindowOptions {
  port: number;
  host?: string;
  path: string;
  method?: string;
  headers?: Record<string, string>;
  /** The request body (UTF-8), sent with its content-length in the same write as the head. */
  body?: string;
  /** Text a 2xx answer's body must hold to count as ok. */
  expect?: string;
  ca: string;
  cert: string;
  key: string;
  connections: number;
}

const options = JSON.parse(process.argv[2] ?? '{}') as Options;
const ca = readFileSync(options.ca);
const cert = readFileSync(options.cert);
const key = readFileSync(options.key);
const body = options.body === undefined ? undefined : Buffer.from(options.body);
// The whole request, head and body, in one buffer: one write per request, as for a bare head.
const request = Buffer.concat([
  Buffer.from(
    `${options.method ?? 'GET'} ${options.path} HTTP/1.1\r\nhost: localhost\r\n` +
      Object.entries(options.headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join('') +
      (body ? `content-length: ${body.length}\r\n` : '') +
      '\r\n',
  ),
  ...(body ? [body] : []),
]);
const expect = options.expect === undefined ? undefined : Buffer.from(options.expect);

const recorder = new Recorder();

function worker(): Promise<void> {
  return new Promise((resolve) => {
    let socket: TLSSocket;
    let buffer: Buffer = Buffer.alloc(0);
    let sentAt = 0n;
    const send = () => {
      if (!recorder.running) {
        socket.end();
        resolve();
        return;
      }
      sentAt = process.hrtime.bigint();
      socket.write(request);
    };
    const open = () => {
      socket = connect({ port: options.port, host: options.host ?? '127.0.0.1', servername: 'localhost', ca, cert, key }, send);
      socket.setNoDelay(true);
      socket.on('data', (chunk: Buffer) => {
        buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
        for (;;) {
          const end = buffer.indexOf('\r\n\r\n');
          if (end === -1) return;
          const headText = buffer.subarray(0, end).toString('latin1');
          const match = /\r\ncontent-length:\s*(\d+)/i.exec(headText);
          let total: number;
          if (match) total = end + 4 + Number(match[1]);
          else {
            const last = buffer.indexOf('\r\n0\r\n\r\n', end);
            if (last === -1) return;
            total = last + 7;
          }
          if (buffer.length < total) return;
          const status = Number(headText.slice(9, 12));
          const ok = status >= 200 && status <= 299 && (expect === undefined || buffer.subarray(end + 4, total).includes(expect));
          buffer = buffer.subarray(total);
          recorder.done(sentAt, ok);
          send();
        }
      });
      socket.on('error', () => recorder.error());
      socket.on('close', () => {
        if (recorder.running) {
          buffer = Buffer.alloc(0);
          setTimeout(open, 10);
        } else resolve();
      });
    };
    open();
  });
}

const workers = Array.from({ length: options.connections }, worker);
recorder.run(options, () => workers);
