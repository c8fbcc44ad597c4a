// The Shared Signals receiver (SPEC "Shared Signals receiver"): RFC 8935 push delivery of
// Security Event Tokens on its own listener (`signals.listen`, `signals.path`). A transmitter
// POSTs one SET (`Content-Type: application/secevent+jwt`); it is checked (src/revocation/
// signals-set.ts), its jti remembered (signals-replay.ts), its CAEP event turned into a
// revocation entry (signals-caep.ts) and published through the one seam every source uses
// (publish.ts: the fleet's bus, or this sidecar only with revocation.source: local). Accepted:
// 202. Refused: 400 and RFC 8935's `{"err", "description"}`, and nothing applied.
// Plain HTTP: TLS for a transmitter on the internet is the ingress's; what makes a SET
// trustworthy is its signature, and the optional bearer token says who may knock at all.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { JWTVerifyGetKey } from 'jose';
import type { IssuerConfig } from '../config/schema.ts';
import { issuerKeys } from '../tokens/key-set.ts';
import type { JwksFetchResult } from '../tokens/jwks-fetch.ts';
import type { Logger } from '../telemetry/logger.ts';
import { RateLimitedLog } from '../decision/rate-limited-log.ts';
import { entryTargets } from './entry.ts';
import type { PublishRevocation } from './publish.ts';
import { eventName, mapEvent, SIGNAL_EVENTS, type SignalEvent } from './signals-caep.ts';
import { ReplayMemory } from './signals-replay.ts';
import { checkSet, SET_ERRS, SET_FUTURE_SKEW_MS, SET_MAX_AGE_MS, type SetErr, type Transmitter } from './signals-set.ts';

/** A SET is a few hundred bytes to a few KiB; anything near this is not one. */
export const MAX_SET_BYTES = 64 * 1024;

export interface SignalsConfig {
  readonly listen: { readonly address: string; readonly port: number };
  readonly path: string;
  readonly bearerTokenFile?: string | undefined;
  readonly transmitters: readonly { readonly issuer: string; readonly jwksFile?: string | undefined; readonly jwksUrl?: string | undefined; readonly audience: string }[];
}

/** `result` label values: accepted, an RFC 8935 err code, or unavailable (503: send it again). */
export type SignalResult = 'accepted' | SetErr | 'unavailable';
const RESULTS: readonly SignalResult[] = ['accepted', ...SET_ERRS, 'unavailable'];

/**
 * `event` label values: the three CAEP events acted on, `other` (a SET naming one event of
 * another type), or `unknown` (refused before one event could be told: the bearer token, the
 * Content-Type, the size, or a body that is no JWS or names no single event). SPEC names the
 * label only; `unknown` keeps an attack on the port out of the `other` events a transmitter sent.
 */
export type SignalLabel = SignalEvent | 'unknown';
const LABELS: readonly SignalLabel[] = [...SIGNAL_EVENTS, 'unknown'];

export interface SignalsMetrics {
  readonly signalsReceived: { inc(labels: { event: SignalLabel; result: SignalResult }, value?: number): void };
  readonly jwksFetched: (result: JwksFetchResult) => void;
}

export interface SignalsReceiver {
  readonly server: Server;
  listen(): Promise<number>;
  close(): Promise<void>;
}

type Answer = { status: number; body?: Record<string, string>; headers?: Record<string, string> };

/** The token file's content (one line); a file that is empty would let anyone in. */
function readBearerToken(file: string): Buffer {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new Error(`signals.bearerTokenFile: ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
  }
  const token = text.trim();
  if (token === '') throw new Error(`signals.bearerTokenFile: ${file} is empty`);
  return Buffer.from(token, 'utf8');
}

/** Constant time whatever the lengths: both sides hashed first, then compared. */
function sameSecret(given: string, expected: Buffer): boolean {
  const a = createHash('sha256').update(given, 'utf8').digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** The eventual event label, from the unverified payload: bounded, since only five values exist. */
function claimedEvent(token: string): SignalLabel {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { events?: unknown };
    const events = payload.events;
    if (events === null || typeof events !== 'object' || Array.isArray(events)) return 'unknown';
    const uris = Object.keys(events);
    return uris.length === 1 ? eventName(uris[0]!) : 'unknown';
  } catch {
    return 'unknown';
  }
}

function readBody(req: IncomingMessage): Promise<Buffer | 'too_large'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_SET_BYTES) {
        req.removeAllListeners('data');
        req.pause();
        resolve('too_large');
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export function createSignalsReceiver(o: { config: SignalsConfig; publish: PublishRevocation; metrics: SignalsMetrics; logger: Logger; jwksTimeoutMs: number }): SignalsReceiver {
  const { config, metrics, logger } = o;
  const bearer = config.bearerTokenFile !== undefined ? readBearerToken(config.bearerTokenFile) : undefined;
  const transmitters = new Map<string, Transmitter>(
    config.transmitters.map((t) => {
      const source: IssuerConfig = { issuer: t.issuer, jwksFile: t.jwksFile, jwksUrl: t.jwksUrl, publicKeyFile: undefined };
      const keys: JWTVerifyGetKey = issuerKeys(source, o.jwksTimeoutMs, metrics.jwksFetched);
      return [t.issuer, { issuer: t.issuer, audience: t.audience, keys }];
    }),
  );
  const replay = new ReplayMemory();
  // Anyone who can reach the port can send garbage: one refusal line per kind every 10 s.
  const refusals = new RateLimitedLog(logger, 10_000);
  for (const event of LABELS) for (const result of RESULTS) metrics.signalsReceived.inc({ event, result }, 0);

  // `close`: refused before the body was read, so the connection is not reused.
  const refused = (event: SignalLabel, err: SetErr, description: string, close = false, status = 400): Answer => {
    metrics.signalsReceived.inc({ event, result: err });
    refusals.warn(`${event} ${err}`, { event, err, description }, 'shared signal refused');
    return { status, body: { err, description }, headers: close ? { connection: 'close' } : {} };
  };
  const tooLarge = (): Answer => refused('unknown', 'invalid_request', `the body is larger than ${MAX_SET_BYTES} bytes`, true, 413);
  const unavailable = (event: SignalLabel, description: string): Answer => {
    metrics.signalsReceived.inc({ event, result: 'unavailable' });
    logger.warn({ event, description }, 'shared signal not taken: send it again');
    return { status: 503, body: { description }, headers: { 'retry-after': '5' } };
  };

  async function handle(req: IncomingMessage): Promise<Answer> {
    const path = (req.url ?? '').split('?')[0];
    if (path !== config.path) return { status: 404, body: { description: `the SET endpoint is POST ${config.path}` }, headers: { connection: 'close' } };
    if (req.method !== 'POST') return { status: 405, body: { description: `the SET endpoint is POST ${config.path}` }, headers: { allow: 'POST', connection: 'close' } };
    // Who is knocking first, before reading a byte of the body.
    if (bearer) {
      const match = /^Bearer ([\x21-\x7e]+)$/.exec(req.headers.authorization ?? '');
      if (!match || !sameSecret(match[1]!, bearer)) return refused('unknown', 'authentication_failed', 'expected Authorization: Bearer with the token of signals.bearerTokenFile', true);
    }
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/secevent+jwt') return refused('unknown', 'invalid_request', `expected Content-Type: application/secevent+jwt, got ${JSON.stringify(type.slice(0, 100))}`, true);
    const length = Number(req.headers['content-length'] ?? 0);
    if (length > MAX_SET_BYTES) return tooLarge();
    const body = await readBody(req);
    if (body === 'too_large') return tooLarge();
    const token = body.toString('latin1').trim();
    const event = claimedEvent(token);
    const checked = await checkSet(token, transmitters);
    if (!checked.ok) return checked.err === 'unavailable' ? unavailable(event, checked.description) : refused(event, checked.err, checked.description);
    const named = eventName(checked.eventUri);
    const mapped = mapEvent(named, checked.payload, checked.subId, checked.issuer);
    if (!mapped.ok) return refused(named, mapped.err, mapped.description);
    // Checked and recorded in one synchronous step, after every other check: a refused SET does
    // not use up its jti, and two copies verified at once cannot both pass.
    const remembered = replay.remember(checked.issuer, checked.jti, checked.iat * 1000 + SET_MAX_AGE_MS + SET_FUTURE_SKEW_MS);
    if (remembered === 'replay') return refused(named, 'invalid_request', `jti ${JSON.stringify(checked.jti)} of ${checked.issuer} was already received`);
    if (remembered === 'full') return unavailable(named, `the replay memory is full (${replay.maxEntries} SETs within ${SET_MAX_AGE_MS / 60_000} minutes)`);
    if (mapped.entry) {
      const published = await o.publish(mapped.entry, 'signals');
      if (!published.ok) {
        // Applied here, but the fleet was not told: let the transmitter send it again.
        replay.forget(checked.issuer, checked.jti);
        return unavailable(named, `${published.problem}; applied on this sidecar only`);
      }
      logger.info({ event: named, set_jti: checked.jti, iss: checked.issuer, entry_id: published.id, ...entryTargets(mapped.entry) }, 'shared signal applied');
    } else {
      logger.info({ event: named, event_type: checked.eventUri.slice(0, 256), set_jti: checked.jti, iss: checked.issuer }, 'shared signal accepted, nothing to apply');
    }
    metrics.signalsReceived.inc({ event: named, result: 'accepted' });
    return { status: 202 };
  }

  const server = createServer({ requestTimeout: 10_000, headersTimeout: 5_000, maxHeaderSize: 16_384 }, (req, res: ServerResponse) => {
    handle(req).then(
      (answer) => send(res, answer),
      (error: unknown) => {
        logger.warn({ detail: (error as Error).message }, 'shared signal failed');
        send(res, { status: 500, body: { description: 'internal error' }, headers: { connection: 'close' } });
      },
    );
  });

  // Bounded memory however many connect: at most this many bodies of MAX_SET_BYTES in flight.
  server.maxConnections = 256;

  return {
    server,
    listen: () =>
      new Promise<number>((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.listen.port, config.listen.address, () => {
          server.off('error', reject);
          const bound = server.address();
          resolve(typeof bound === 'object' && bound ? bound.port : config.listen.port);
        });
      }),
    close: () =>
      new Promise<void>((resolve) => {
        if (!server.listening) return resolve();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function send(res: ServerResponse, answer: Answer): void {
  const headers: Record<string, string | number> = { 'cache-control': 'no-store', ...answer.headers };
  if (answer.body === undefined) {
    res.writeHead(answer.status, { ...headers, 'content-length': 0 });
    res.end();
    return;
  }
  const text = JSON.stringify(answer.body);
  res.writeHead(answer.status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
