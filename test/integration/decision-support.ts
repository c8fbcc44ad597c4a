// Shared by the decision-*.test.ts files: real issuer keys (JWKS file, PEM, remote JWKS), real
// signed tokens, a Portcullis instance with grants and posture configured, and small helpers
// for the admin API and the Prometheus exposition.
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { exportJWK, SignJWT, type JWK, type JWTPayload } from 'jose';
import { Agent, request } from 'undici';
import { loadConfig } from '../../src/config/load.ts';
import { startInstance, type Instance } from '../../src/cli/instance.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { memoryAuditLog, type AuditRecord } from '../../src/telemetry/audit.ts';
import { SERVER_ID, type Pki } from '../support/harness.ts';

export const TD = 'example.org';
export const OWN_ID = `spiffe://${TD}${SERVER_ID}`;
export const SUPPORT_ID = `spiffe://${TD}/ns/prod/sa/support-bot`;
export const SUPPORT_WEB_ID = `spiffe://${TD}/ns/prod/sa/support-web`;
export const BILLING_ID = `spiffe://${TD}/ns/prod/sa/billing`;

export const JIT_ISS = 'https://jit.example.org';
export const PEM_ISS = 'https://jit-pem.example.org';
export const REMOTE_ISS = 'https://jit-remote.example.org';
export const POSTURE_ISS = 'https://posture.example.org';

export interface IssuerKey {
  readonly key: KeyObject;
  readonly publicKey: KeyObject;
  readonly kid: string;
  readonly jwk: JWK;
  readonly jwks: string;
  readonly spkiPem: string;
}

export async function issuerKey(kid: string): Promise<IssuerKey> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  return { key: privateKey, publicKey, kid, jwk, jwks: JSON.stringify({ keys: [jwk] }), spkiPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

let serial = 0;
export function newJti(prefix = 'g'): string {
  serial++;
  return `${prefix}-${process.pid}-${serial}-${Math.random().toString(36).slice(2, 8)}`;
}

export interface SignOptions {
  readonly key: KeyObject | Uint8Array;
  readonly alg?: string;
  readonly kid?: string;
}

/** Signs exactly these claims (numbers may be fractional): full control for edge cases. */
export function signToken(claims: JWTPayload, o: SignOptions): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: o.alg ?? 'ES256', typ: 'JWT', ...(o.kid ? { kid: o.kid } : {}) }).sign(o.key);
}

export interface GrantClaims {
  readonly sub?: string;
  readonly scope?: string;
  readonly resources?: readonly string[];
  readonly intent?: string;
  readonly jti?: string;
  /** Seconds, may be fractional. */
  readonly iat?: number;
  readonly exp?: number;
  readonly nbf?: number;
  readonly aud?: string;
  readonly iss?: string;
  readonly cnf?: Record<string, string>;
  readonly approver?: string;
  readonly justification?: string;
}

/** Grant claims with sane defaults: support-bot, orders.refund on order:*, 10 minutes. */
export function grantClaims(c: GrantClaims = {}): JWTPayload {
  const now = Date.now() / 1000;
  const claims: JWTPayload = {
    iss: c.iss ?? JIT_ISS,
    sub: c.sub ?? SUPPORT_ID,
    aud: c.aud ?? OWN_ID,
    iat: c.iat ?? Math.floor(now),
    exp: c.exp ?? Math.floor(now) + 600,
    jti: c.jti ?? newJti(),
    scope: c.scope ?? 'orders.refund',
  };
  if (c.resources) claims.resources = [...c.resources];
  if (c.intent !== undefined) claims.intent = c.intent;
  if (c.nbf !== undefined) claims.nbf = c.nbf;
  if (c.cnf) claims.cnf = c.cnf;
  if (c.approver) claims.approver = c.approver;
  if (c.justification) claims.justification = c.justification;
  return claims;
}

/** A JWKS served over plain HTTP (for `jwksUrl`), counting fetches. */
export interface JwksServer {
  readonly url: string;
  readonly hits: () => number;
  close(): Promise<void>;
}

export async function serveJwks(jwks: string): Promise<JwksServer> {
  let hits = 0;
  const server: Server = createServer((_req, res) => {
    hits++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(jwks);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}/jwks.json`,
    hits: () => hits,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Starts an instance from `name` in the PKI dir (so several instances can share one PKI). */
export async function startNamed(pki: Pki, name: string, yaml: string): Promise<{ instance: Instance; audit: ReturnType<typeof memoryAuditLog>; file: string }> {
  const file = pki.write(name, yaml);
  const audit = memoryAuditLog();
  const instance = await startInstance(loadConfig(file), { logger: createLogger('silent'), svidPollMs: 60_000, configFile: file, audit });
  return { instance, audit, file };
}

export async function admin(instance: Instance, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await request(`http://127.0.0.1:${instance.adminPort}${path}`, {
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: method === 'POST' ? { 'content-type': 'application/json' } : undefined,
  });
  const text = await response.body.text();
  return { status: response.statusCode, json: JSON.parse(text) as Record<string, unknown> };
}

/** Sum of every sample of `name` whose labels include `labels` (label order does not matter). */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (.+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = new Map<string, string>();
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) have.set(pair[1]!, pair[2]!);
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) total += Number(match[3]);
  }
  return total;
}

export async function metric(instance: Instance, name: string, labels: Record<string, string> = {}): Promise<number> {
  return sample(await instance.metrics.registry.metrics(), name, labels);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

export function recordsFor(records: readonly AuditRecord[], jti: string): AuditRecord[] {
  return records.filter((r) => r.grant_jti === jti);
}

/** An agent with many connections, opened up front so concurrent requests really overlap. */
export async function wideAgent(ca: string, client: { certPem: string; keyPem: string }, connections: number, port: number): Promise<Agent> {
  const agent = new Agent({ connections, pipelining: 1, connect: { ca, cert: client.certPem, key: client.keyPem, servername: 'localhost' } });
  await Promise.all(
    Array.from({ length: connections }, async () => {
      const response = await request(`https://localhost:${port}/healthz`, { dispatcher: agent });
      await response.body.text();
    }),
  );
  return agent;
}
