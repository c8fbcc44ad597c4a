// How Portcullis connects to the revocation bus's Redis (SPEC "Config file", revocation.url):
// the official node-redis client, `redis://` or `rediss://` (TLS), an ACL user and password in
// the URL or the password from revocation.passwordFile, a connect timeout. Connections never
// reconnect by themselves: the bus and the CLI decide when to try again (with backoff, from the
// last id read), so a command never waits in an offline queue while a request path counts on it.
// No secret reaches a log line: URLs are shown redacted, and error messages are scrubbed.
import { readFileSync } from 'node:fs';
import { createClient } from 'redis';

export type RedisConnection = ReturnType<typeof createClient>;

export interface RedisSettings {
  readonly url: string;
  /** From revocation.passwordFile (it wins over a password in the URL). */
  readonly password?: string | undefined;
  readonly connectTimeoutMs: number;
}

/** The password file's content, without its trailing newline. Throws naming the key. */
export function readPasswordFile(file: string): string {
  try {
    return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (error) {
    throw new Error(`revocation.passwordFile: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
  }
}

/** The URL with its password (if any) replaced by `***`: the only form a log line may show. */
export function redactUrl(url: string): string {
  return url.replace(/^(rediss?:\/\/[^:@/]*:)[^@/]*@/, '$1***@');
}

/** An error's message with every secret we know of removed (a URL's password, the password file's). */
export function scrub(message: string, settings: RedisSettings): string {
  let text = message;
  const inUrl = /^rediss?:\/\/[^:@/]*:([^@/]*)@/.exec(settings.url)?.[1];
  for (const secret of [inUrl, inUrl ? safeDecode(inUrl) : undefined, settings.password, settings.password !== undefined ? encodeURIComponent(settings.password) : undefined]) {
    if (secret) text = text.split(secret).join('***');
  }
  return text.split(settings.url).join(redactUrl(settings.url)).split(withPassword(settings)).join(redactUrl(settings.url));
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * The URL to connect with: node-redis reads the ACL user from the URL and then ignores a
 * separate `password` option (the AUTH fails), so passwordFile's password goes into the URL.
 */
function withPassword(settings: RedisSettings): string {
  if (settings.password === undefined) return settings.url;
  const url = new URL(settings.url);
  url.password = encodeURIComponent(settings.password);
  return url.toString();
}

/** A connected client, or a thrown error (scrubbed) when Redis cannot be reached within the timeout. */
export async function connectRedis(settings: RedisSettings, name: string): Promise<RedisConnection> {
  const client = createClient({
    url: withPassword(settings),
    name,
    disableOfflineQueue: true,
    socket: { connectTimeout: settings.connectTimeoutMs, reconnectStrategy: false, keepAlive: true },
  });
  // An 'error' event with no listener would crash the process. A refused AUTH is only told
  // here (connect() then says "The client is closed"), so the last one is kept to say why.
  let lastError: unknown;
  client.on('error', (error: unknown) => (lastError = error));
  const timer = new Promise<never>((_, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer from ${redactUrl(settings.url)} within ${settings.connectTimeoutMs}ms`)), settings.connectTimeoutMs + 500);
    t.unref();
  });
  try {
    await Promise.race([client.connect(), timer]);
    return client;
  } catch (error) {
    // destroy() throws on a client that already closed itself (a refused AUTH does that).
    dropConnection(client);
    const why = describeError(error instanceof Error && error.message ? error : (lastError ?? error));
    throw new Error(scrub(why, settings), { cause: error });
  }
}

/** node-redis reports a refused connection as an AggregateError with an empty message. */
export function describeError(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return error.errors.map((e) => describeError(e)).join('; ');
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}

/** Closes a client whatever its state. */
export function dropConnection(client: RedisConnection | undefined): void {
  if (!client) return;
  try {
    client.destroy();
  } catch {
    // already closed
  }
}
