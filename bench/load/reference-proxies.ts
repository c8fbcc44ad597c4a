// Yardsticks for `npm run bench -- --reference`: the least a Node.js mTLS proxy can do, with no
// authorization, no header rules and no error handling. They show what the platform costs before
// Portcullis adds anything. NOT for use: they trust every byte the service sends and read only
// Content-Length answers.
//   node-undici      Node https server, undici Pool dispatch to the service
//   node-raw-client  Node https server, a raw keep-alive socket to the service
//   node-raw         TLS sockets with the request head read by hand, a raw socket to the service
// Usage: node reference-proxies.ts '{"kind":"node-raw","port":0,"upstreamPort":N,"cert":…,"key":…,"ca":…}'
import { createServer as createHttps } from 'node:https';
import { createServer as createTls, type TLSSocket } from 'node:tls';
import { connect, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { Pool } from 'undici';

interface Options {
  kind: 'node-undici' | 'node-raw-client' | 'node-raw';
  port: number;
  upstreamPort: number;
  cert: string;
  key: string;
  ca: string;
}

const options = JSON.parse(process.argv[2] ?? '{}') as Options;
const tls = { cert: readFileSync(options.cert), key: readFileSync(options.key), ca: readFileSync(options.ca), requestCert: true, rejectUnauthorized: true };
const HEAD_END = Buffer.from('\r\n\r\n');

type Answer = (status: number, head: Buffer, body: Buffer) => void;

/** One keep-alive connection to the service, one exchange at a time, Content-Length answers only. */
class RawConnection {
  readonly socket: Socket;
  private readonly idle: RawConnection[];
  private buffered: Buffer | undefined;
  answer: Answer | undefined;

  constructor(idle: RawConnection[]) {
    this.idle = idle;
    this.socket = connect(options.upstreamPort, '127.0.0.1');
    this.socket.setNoDelay(true);
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    // The service closes connections idle past its keep-alive timeout (between bench rounds).
    this.socket.on('close', () => {
      const at = idle.indexOf(this);
      if (at !== -1) idle.splice(at, 1);
    });
    this.socket.on('error', () => undefined);
  }

  private onData(chunk: Buffer): void {
    const buf = this.buffered ? Buffer.concat([this.buffered, chunk]) : chunk;
    const end = buf.indexOf(HEAD_END);
    const length = end === -1 ? 0 : Number(/\r\ncontent-length: *(\d+)/i.exec(buf.toString('latin1', 0, end))?.[1] ?? 0);
    if (end === -1 || buf.length < end + 4 + length) {
      this.buffered = buf;
      return;
    }
    this.buffered = undefined;
    const answer = this.answer!;
    this.answer = undefined;
    this.idle.push(this);
    answer(Number(buf.toString('latin1', 9, 12)), buf.subarray(0, end + 2), buf.subarray(end + 4, end + 4 + length));
  }
}

function rawExchange(idle: RawConnection[], path: string, answer: Answer): void {
  const connection = idle.pop() ?? new RawConnection(idle);
  connection.answer = answer;
  connection.socket.write(`GET ${path} HTTP/1.1\r\nhost: localhost\r\nx-forwarded-proto: https\r\n\r\n`, 'latin1');
}

function ready(server: { address(): unknown }): void {
  const address = server.address() as { port: number };
  process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
}

if (options.kind === 'node-undici') {
  const pool = new Pool(`http://127.0.0.1:${options.upstreamPort}`, { connections: 64, pipelining: 1 });
  const server = createHttps(tls, (req, res) => {
    pool.dispatch(
      { method: 'GET', path: req.url!, headers: ['host', 'localhost', 'x-forwarded-proto', 'https'] },
      {
        onRequestStart() {},
        onResponseStart(_controller, status, headers) {
          const out: string[] = [];
          for (const name in headers) if (name !== 'connection' && name !== 'keep-alive') out.push(name, headers[name] as string);
          res.writeHead(status, out);
        },
        onResponseData(_controller, chunk) {
          res.write(chunk);
        },
        onResponseEnd() {
          res.end();
        },
        onResponseError(_controller, error) {
          res.destroy(error);
        },
      },
    );
  });
  server.listen(options.port, '127.0.0.1', () => ready(server));
} else if (options.kind === 'node-raw-client') {
  const idle: RawConnection[] = [];
  const server = createHttps(tls, (req, res) => {
    rawExchange(idle, req.url!, (status, _head, body) => {
      res.writeHead(status, ['content-type', 'text/plain', 'content-length', String(body.length)]);
      res.end(body);
    });
  });
  server.listen(options.port, '127.0.0.1', () => ready(server));
} else {
  const idle: RawConnection[] = [];
  const server = createTls(tls, (socket: TLSSocket) => {
    socket.setNoDelay(true);
    let buffered: Buffer | undefined;
    socket.on('data', (chunk: Buffer) => {
      const buf = buffered ? Buffer.concat([buffered, chunk]) : chunk;
      const end = buf.indexOf(HEAD_END);
      if (end === -1) {
        buffered = buf;
        return;
      }
      buffered = buf.length > end + 4 ? buf.subarray(end + 4) : undefined;
      const line = buf.toString('latin1', 0, buf.indexOf('\r\n'));
      const path = line.slice(line.indexOf(' ') + 1, line.lastIndexOf(' '));
      rawExchange(idle, path, (_status, head, body) => {
        // The service's head as it came (keep-alive both sides), then its body: one TLS write.
        socket.cork();
        socket.write(head);
        socket.write('\r\n');
        socket.write(body);
        socket.uncork();
      });
    });
  });
  server.listen(options.port, '127.0.0.1', () => ready(server));
}
process.on('SIGTERM', () => process.exit(0));
