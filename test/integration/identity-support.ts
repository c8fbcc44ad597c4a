// Helpers shared by the identity and rotation integration tests: bounded waits, metric reads,
// and a raw node:tls HTTP/1.1 exchange that exposes what undici hides (session reuse, the
// server certificate, the TLS session ticket).
import { createHash, X509Certificate } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import { connect, type PeerCertificate } from 'node:tls';
import type { Instance } from '../../src/cli/instance.ts';
import { metricsText, metricValue, type Issued } from '../support/harness.ts';

/** Polls `check` until it returns true; fails after `timeoutMs`. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 5_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export async function metric(instance: Instance, sample: string): Promise<number> {
  return metricValue(await metricsText(instance), sample);
}

export function failureSample(reason: string): string {
  return `portcullis_tls_handshake_failures_total{reason="${reason}"}`;
}

/** The sum of every `portcullis_tls_handshake_failures_total` sample, whatever the reason. */
export async function totalHandshakeFailures(instance: Instance): Promise<number> {
  const text = await metricsText(instance);
  return text
    .split('\n')
    .filter((line) => line.startsWith('portcullis_tls_handshake_failures_total{'))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
}

/** Lowercase hex SHA-256 of a certificate's DER, computed independently of the proxy. */
export function derSha256Hex(certPem: string): string {
  return createHash('sha256').update(new X509Certificate(certPem).raw).digest('hex');
}

/** Node's `fingerprint256` format (uppercase, colon separated) of a PEM certificate. */
export function fingerprintOf(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256;
}

/** Replaces a file in one step (write aside, then rename), so a poll never sees half of it. */
export function replaceFile(path: string, content: string): void {
  writeFileSync(`${path}.tmp`, content);
  renameSync(`${path}.tmp`, path);
}

export interface TlsExchange {
  /** Whether the TLS handshake completed on the client side. */
  readonly secure: boolean;
  readonly reused: boolean;
  readonly serverFingerprint: string | undefined;
  /** The raw HTTP response ('' when the connection was closed without one). */
  readonly response: string;
  readonly status: number | undefined;
  /** The last TLS session the server offered (for resumption). */
  readonly session: Buffer | undefined;
  readonly error: Error | undefined;
}

export interface TlsExchangeOptions {
  readonly ca: string;
  readonly client?: Pick<Issued, 'certPem' | 'keyPem'>;
  readonly session?: Buffer;
  readonly path?: string;
  /** Only handshake, no request. */
  readonly handshakeOnly?: boolean;
  readonly timeoutMs?: number;
}

/**
 * One connection: TLS handshake, then (unless handshakeOnly) `GET path` with `connection: close`,
 * reading until the server closes. Never rejects: errors are reported in the result.
 */
export function tlsExchange(port: number, options: TlsExchangeOptions): Promise<TlsExchange> {
  return new Promise((resolve) => {
    let secure = false;
    let reused = false;
    let serverFingerprint: string | undefined;
    let session: Buffer | undefined;
    let error: Error | undefined;
    const chunks: Buffer[] = [];
    const socket = connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      ca: options.ca,
      cert: options.client?.certPem,
      key: options.client?.keyPem,
      session: options.session,
      ALPNProtocols: ['http/1.1'],
    });
    const timer = setTimeout(() => {
      error ??= new Error('tlsExchange timed out');
      socket.destroy();
    }, options.timeoutMs ?? 5_000);
    socket.on('session', (s: Buffer) => (session = s));
    socket.on('secureConnect', () => {
      secure = true;
      reused = socket.isSessionReused();
      serverFingerprint = (socket.getPeerCertificate() as PeerCertificate).fingerprint256;
      if (options.handshakeOnly) {
        // Give the server a moment to send its session tickets, then leave politely.
        setTimeout(() => socket.end(), 50);
        return;
      }
      socket.write(`GET ${options.path ?? '/orders/1'} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n`);
    });
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (e) => (error ??= e));
    socket.on('close', () => {
      clearTimeout(timer);
      const response = Buffer.concat(chunks).toString('utf8');
      const match = /^HTTP\/1\.1 (\d{3})/.exec(response);
      resolve({ secure, reused, serverFingerprint, response, status: match ? Number(match[1]) : undefined, session, error });
    });
  });
}

/** The JSON body of a raw HTTP/1.1 response (the echo upstream's view of the request). */
export function responseJson(response: string): Record<string, unknown> {
  const body = response.slice(response.indexOf('\r\n\r\n') + 4);
  const text = /transfer-encoding: chunked/i.test(response.slice(0, response.indexOf('\r\n\r\n'))) ? dechunk(body) : body;
  return JSON.parse(text) as Record<string, unknown>;
}

function dechunk(body: string): string {
  let out = '';
  let rest = body;
  for (;;) {
    const eol = rest.indexOf('\r\n');
    const size = parseInt(rest.slice(0, eol), 16);
    if (!size) return out;
    out += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
}
