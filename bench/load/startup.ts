// Start to listening, and idle memory after start (issue 15's first and third figures): a server
// is spawned, a client tries an mTLS handshake with it every few milliseconds until one
// completes, and once it has then sat idle for a while its RSS is read. The same for Portcullis
// and for the yardstick, a bare Node HTTPS server holding the same certificate and asking for the
// same client certificate (BARE_HTTPS_SERVER), started alternately by run.ts.
import type { ChildProcess } from 'node:child_process';
import { connect, type SecureContext } from 'node:tls';
import { rssMiB } from './rss.ts';

export interface StartSample {
  /** From spawn to the first completed mTLS handshake, ms. */
  listenMs: number;
  /** From spawn to the server's own "serving" log line, ms (undefined when it has none or it never came). */
  logMs: number | undefined;
  /** RSS once it has sat idle `settleMs` after listening, MiB. */
  idleRssMiB: number;
}

/**
 * The yardstick: what Node itself holds with an HTTPS server listening, mTLS like Portcullis.
 * Plain JavaScript for `node -e`, not a .ts file: type stripping loads a compiler into the
 * process and would charge the yardstick memory that Portcullis from dist/ never pays.
 * Keep-alive connections stay open 60 s, as Portcullis's do (limits.idleTimeout; Node's default
 * is 5 s), or BARE_KEEPALIVE_MS. Reads BARE_PORT, BARE_CERT, BARE_KEY, BARE_CA from the environment.
 */
export const BARE_HTTPS_SERVER = `
const { createServer } = require('node:https');
const { readFileSync } = require('node:fs');
const env = process.env;
const server = createServer({ cert: readFileSync(env.BARE_CERT), key: readFileSync(env.BARE_KEY), ca: readFileSync(env.BARE_CA), requestCert: true, rejectUnauthorized: true, keepAliveTimeout: Number(env.BARE_KEEPALIVE_MS || 60000) }, (req, res) => { req.resume(); res.end('ok'); });
server.listen(Number(env.BARE_PORT), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
`;

const RETRY_MS = 5;

/** One handshake attempt: true once the server completed mTLS with us. */
function handshake(port: number, secureContext: SecureContext): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1', servername: 'localhost', secureContext }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

export interface StartOptions {
  port: number;
  /** The client's certificate, key and CA. */
  secureContext: SecureContext;
  settleMs: number;
  /** Text of the log line (on stderr) that says the server is serving. */
  logLine?: string;
  timeoutMs?: number;
}

/** Spawns the server (`start` must spawn it now), measures it, then stops it. */
export async function timeStart(start: () => ChildProcess, options: StartOptions): Promise<StartSample> {
  const spawnedAt = performance.now();
  const child = start();
  let logMs: number | undefined;
  let errText = '';
  child.stdout?.resume();
  child.stderr?.on('data', (chunk: Buffer) => {
    const text = chunk.toString();
    errText = (errText + text).slice(-4000);
    if (logMs === undefined && options.logLine && errText.includes(options.logLine)) logMs = performance.now() - spawnedAt;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    const deadline = spawnedAt + (options.timeoutMs ?? 20_000);
    let listenMs: number | undefined;
    while (listenMs === undefined) {
      if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode} before listening: ${errText}`);
      if (performance.now() > deadline) throw new Error(`not listening after ${options.timeoutMs ?? 20_000} ms: ${errText}`);
      if (await handshake(options.port, options.secureContext)) listenMs = performance.now() - spawnedAt;
      else await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
    await new Promise((resolve) => setTimeout(resolve, options.settleMs));
    return { listenMs, logMs, idleRssMiB: rssMiB(child.pid) };
  } finally {
    child.kill('SIGTERM');
    const killed = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(killed);
  }
}
