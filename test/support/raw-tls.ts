// A raw TLS client for requests no HTTP library will send as written (odd request-targets,
// `_` header spellings, malformed request lines).
import { connect, type TLSSocket } from 'node:tls';
import type { Issued } from './harness.ts';

export function rawRequest(port: number, ca: string, client: Issued, payload: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', servername: 'localhost', ca, cert: client.certPem, key: client.keyPem }, () => socket.write(payload));
    let data = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(data);
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      data += chunk;
    });
    socket.on('end', () => {
      clearTimeout(timer);
      resolve(data);
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      if (data) resolve(data);
      else reject(error);
    });
  });
}

/** An open mTLS connection whose bytes a test writes and reads itself (pipelining, upgrades, timing). */
export interface RawSession {
  readonly socket: TLSSocket;
  /** Everything received so far, as latin1 text. */
  text(): string;
  /** Resolves with the time the connection closed. */
  readonly closed: Promise<number>;
  /** Waits until the connection closes, at most `ms`; true if it closed. */
  closedWithin(ms: number): Promise<boolean>;
}

export async function rawSession(port: number, ca: string, client: Issued): Promise<RawSession> {
  const socket = connect({ port, host: '127.0.0.1', servername: 'localhost', ca, cert: client.certPem, key: client.keyPem });
  socket.on('error', () => undefined);
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
  await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
  return {
    socket,
    text: () => received,
    closed,
    closedWithin: (ms) => Promise.race([closed.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms))]),
  };
}

/** Status code and JSON body of a raw HTTP/1.1 response (Connection: close expected). */
export function parseRaw(response: string): { status: number; headers: string; body: string } {
  const split = response.indexOf('\r\n\r\n');
  const head = response.slice(0, split);
  let body = response.slice(split + 4);
  if (/\r\ntransfer-encoding: chunked/i.test(head)) body = dechunk(body);
  return { status: Number(head.split(' ')[1]), headers: head, body };
}

function dechunk(text: string): string {
  let out = '';
  let at = 0;
  for (;;) {
    const lineEnd = text.indexOf('\r\n', at);
    if (lineEnd === -1) return out;
    const size = parseInt(text.slice(at, lineEnd), 16);
    if (!size) return out;
    out += text.slice(lineEnd + 2, lineEnd + 2 + size);
    at = lineEnd + 2 + size + 2;
  }
}
