// `portcullis revoke` (SPEC "Command line"): revokes a grant, a subject's grants or a peer's
// posture fleet-wide. With revocation.source: redis it adds the entry to the stream itself
// (XADD, trimmed to revocation.retain: every sidecar applies it); with local, it calls the
// admin API named in the config (POST /admin/revoke, JSON). Prints what was revoked and the
// entry id; every failure is one line naming the problem (bus unreachable, bad ID) and exit 1.
import { hostname, userInfo } from 'node:os';
import { loadConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { entryFields, entryTargets, parseEntry, type RevocationEntry } from '../revocation/entry.ts';
import { connectRedis, describeError, dropConnection, readPasswordFile, redactUrl, scrub, type RedisSettings } from '../revocation/redis-connection.ts';

export interface RevokeRequest {
  readonly jti?: string | undefined;
  readonly sub?: string | undefined;
  readonly postureSub?: string | undefined;
  readonly reason?: string | undefined;
}

export interface RevokeResult {
  readonly code: 0 | 1;
  readonly stdout: string;
  readonly stderr: string;
}

const failed = (message: string): RevokeResult => ({ code: 1, stdout: '', stderr: `revoke: ${message}\n` });

/** Who ran it, for the audit line's `by`. */
function operator(): string {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (a container's arbitrary uid)
  }
  return `portcullis revoke (${user}@${hostname()})`;
}

function describeTargets(entry: RevocationEntry): string {
  return Object.entries(entryTargets(entry))
    .map(([kind, value]) => `${kind} ${value}`)
    .join(', ');
}

export async function revoke(configFile: string, request: RevokeRequest): Promise<RevokeResult> {
  let config: Config;
  try {
    config = loadConfig(configFile);
  } catch (error) {
    return failed((error as Error).message);
  }
  const parsed = parseEntry({ jti: request.jti, sub: request.sub, posture_sub: request.postureSub, reason: request.reason, by: operator() });
  if (!parsed.ok) return failed(parsed.problem.replace(/^posture_sub:/, '--posture-sub:').replace(/^sub:/, '--sub:').replace(/^jti:/, '--jti:').replace(/^reason:/, '--reason:'));
  const entry = parsed.entry;
  return config.revocation.source === 'redis' ? viaRedis(config, entry) : viaAdmin(config, entry);
}

async function viaRedis(config: Config, entry: RevocationEntry): Promise<RevokeResult> {
  const rc = config.revocation;
  let password: string | undefined;
  try {
    password = rc.passwordFile !== undefined ? readPasswordFile(rc.passwordFile) : undefined;
  } catch (error) {
    return failed((error as Error).message);
  }
  const settings: RedisSettings = { url: rc.url!, password, connectTimeoutMs: rc.connectTimeout };
  const where = `${redactUrl(rc.url!)} stream ${rc.stream}`;
  let client;
  try {
    client = await connectRedis(settings, 'portcullis-revoke');
  } catch (error) {
    return failed(`revocation bus unreachable (${where}): ${(error as Error).message}`);
  }
  try {
    const id = await client.xAdd(rc.stream, '*', entryFields(entry), { TRIM: { strategy: 'MINID', strategyModifier: '~', threshold: Date.now() - rc.retain } });
    return { code: 0, stdout: `revoked ${describeTargets(entry)}: entry ${id} on ${where} (every sidecar applies it)\n`, stderr: '' };
  } catch (error) {
    return failed(`revocation bus refused the entry (${where}): ${scrub(describeError(error), settings)}`);
  } finally {
    dropConnection(client);
  }
}

async function viaAdmin(config: Config, entry: RevocationEntry): Promise<RevokeResult> {
  // A wildcard admin address is reached on loopback (the admin API accepts a loopback Host then).
  const address = ['0.0.0.0', '::', '[::]'].includes(config.admin.address) ? '127.0.0.1' : config.admin.address;
  const host = address.includes(':') && !address.startsWith('[') ? `[${address}]` : address;
  const url = `http://${host}:${config.admin.port}/admin/revoke`;
  const body = { ...entryTargets(entry), ...(entry.reason !== undefined ? { reason: entry.reason } : {}), ...(entry.by !== undefined ? { by: entry.by } : {}) };
  let response: Response;
  try {
    response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(Math.max(2_000, config.revocation.connectTimeout)) });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    return failed(`admin API unreachable at ${url}: ${cause?.code ?? cause?.message ?? (error as Error).message}`);
  }
  const text = await response.text();
  let answer: Record<string, unknown> = {};
  try {
    answer = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // reported below with the status
  }
  if (response.status !== 200) return failed(`the admin API at ${url} answered ${response.status}: ${typeof answer.error === 'string' ? answer.error : text.slice(0, 200)}`);
  return { code: 0, stdout: `revoked ${describeTargets(entry)}: entry ${String(answer.entry_id)} on this sidecar's admin API (${url}); revocation.source is local, so other sidecars are not told\n`, stderr: '' };
}
