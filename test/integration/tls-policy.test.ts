// The listener's TLS policy over real sockets (SPEC "The decision, per request", step 1): TLS 1.2
// only with ECDHE and AEAD suites (no CBC, CCM or ARIA), TLS 1.3's suites as they are, and no
// client-initiated renegotiation. Each client offers one suite only, so the server must pick it.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect, type ConnectionOptions, type SecureVersion, type TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configYaml, createPki, DEFAULT_ROUTES, startProxy, startUpstream, type Issued, type Pki, type Upstream } from '../support/harness.ts';
import type { Instance } from '../../src/cli/instance.ts';

const exec = promisify(execFile);
const OPENSSL = ['/usr/bin/openssl', '/usr/local/bin/openssl'].find((path) => existsSync(path));

interface Handshake {
  readonly socket?: TLSSocket;
  readonly cipher?: string;
  readonly error?: Error;
}

describe('TLS policy', () => {
  let pki: Pki;
  let upstream: Upstream;
  let proxy: Instance;
  let client: Issued;

  beforeAll(async () => {
    pki = await createPki();
    upstream = await startUpstream();
    proxy = await startProxy(pki, configYaml(pki, upstream.url, DEFAULT_ROUTES));
    client = await pki.ca.svid('/ns/prod/sa/web');
  });
  afterAll(async () => {
    await proxy?.close();
    await upstream?.close();
    pki?.cleanup();
  });

  /** One handshake offering only `cipher` at `version`; never rejects. */
  function handshake(version: SecureVersion, cipher: string, extra: ConnectionOptions = {}): Promise<Handshake> {
    return new Promise((resolve) => {
      const socket = connect({
        host: '127.0.0.1',
        port: proxy.proxyPort,
        servername: 'localhost',
        ca: pki.ca.bundlePem,
        cert: client.certPem,
        key: client.keyPem,
        minVersion: version,
        maxVersion: version,
        ciphers: cipher,
        ALPNProtocols: ['http/1.1'],
        ...extra,
      });
      const timer = setTimeout(() => {
        socket.destroy();
        resolve({ error: new Error('handshake timed out') });
      }, 5_000);
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        resolve({ socket, cipher: socket.getCipher().name });
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        resolve({ error });
      });
    });
  }

  /** `GET /orders/1` on an open socket; the status, or undefined if the connection ends first. */
  function get(socket: TLSSocket): Promise<number | undefined> {
    return new Promise((resolve) => {
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (text += chunk));
      socket.on('error', () => undefined);
      socket.once('close', () => {
        const match = /^HTTP\/1\.1 (\d{3})/.exec(text);
        resolve(match ? Number(match[1]) : undefined);
      });
      socket.write('GET /orders/1 HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n');
    });
  }

  it.each([
    ['TLSv1.2', 'ECDHE-ECDSA-AES128-GCM-SHA256'],
    ['TLSv1.2', 'ECDHE-ECDSA-AES256-GCM-SHA384'],
    ['TLSv1.2', 'ECDHE-ECDSA-CHACHA20-POLY1305'],
    ['TLSv1.3', 'TLS_AES_128_GCM_SHA256'],
    ['TLSv1.3', 'TLS_AES_256_GCM_SHA384'],
    ['TLSv1.3', 'TLS_CHACHA20_POLY1305_SHA256'],
  ] as const)('accepts %s with %s', async (version, cipher) => {
    const result = await handshake(version, cipher);
    expect(result.error).toBeUndefined();
    expect(result.cipher).toBe(cipher);
    expect(await get(result.socket!)).toBe(200);
  });

  it.each([
    ['CBC', 'ECDHE-ECDSA-AES128-SHA'],
    ['CBC', 'ECDHE-ECDSA-AES256-SHA384'],
    ['CCM', 'ECDHE-ECDSA-AES128-CCM'],
    ['ARIA', 'ECDHE-ECDSA-ARIA128-GCM-SHA256'],
  ])('refuses a TLS 1.2 client that offers only a %s suite (%s)', async (_kind, cipher) => {
    const result = await handshake('TLSv1.2', cipher);
    result.socket?.destroy();
    expect(result.cipher).toBeUndefined();
    expect(String(result.error?.message)).toMatch(/handshake failure|no shared cipher|alert/i);
  });

  it('refuses client-initiated renegotiation on TLS 1.2: the connection is closed', async () => {
    upstream.received.length = 0;
    const result = await handshake('TLSv1.2', 'ECDHE-ECDSA-AES128-GCM-SHA256');
    expect(result.error).toBeUndefined();
    const socket = result.socket!;
    socket.on('error', () => undefined);
    const closed = new Promise<'closed'>((resolve) => socket.once('close', () => resolve('closed')));
    const outcome = await new Promise<string>((resolve) => {
      void closed.then(resolve);
      const timer = setTimeout(() => resolve('no answer'), 3_000);
      const started = socket.renegotiate({ rejectUnauthorized: false }, (error) => {
        clearTimeout(timer);
        resolve(error ? 'refused' : 'renegotiated');
      });
      if (!started) resolve('not started');
    });
    expect(['closed', 'refused']).toContain(outcome);
    // Refused or not, the server has cut the connection (no half-renegotiated session stays open).
    expect(await Promise.race([closed, new Promise((resolve) => setTimeout(() => resolve('open'), 3_000))])).toBe('closed');
    expect(upstream.received).toHaveLength(0);
  });

  it.skipIf(!OPENSSL)('openssl s_client: a CBC-only TLS 1.2 client fails, an AEAD ECDHE one connects', async () => {
    const run = async (cipher: string) => {
      try {
        const { stdout } = await exec('bash', ['-c', `${OPENSSL} s_client -connect 127.0.0.1:${proxy.proxyPort} -tls1_2 -cipher ${cipher} -servername localhost -cert ${pki.dir}/client.pem -key ${pki.dir}/client_key.pem </dev/null 2>&1`], { timeout: 10_000 });
        return stdout;
      } catch (error) {
        return (error as { stdout: string }).stdout;
      }
    };
    pki.write('client.pem', client.certPem);
    pki.write('client_key.pem', client.keyPem);
    expect(await run('ECDHE-ECDSA-AES128-GCM-SHA256')).toMatch(/Cipher is ECDHE-ECDSA-AES128-GCM-SHA256/);
    const cbc = await run('ECDHE-ECDSA-AES128-SHA256');
    expect(cbc).not.toMatch(/Cipher is ECDHE-ECDSA-AES128-SHA256/);
    expect(cbc).toMatch(/handshake failure|Cipher is \(NONE\)/);
  });
});
