// One request through the proxy, whatever its protocol (STYLE.md: one object per request, handed
// to every stage instead of a row of positional arguments): who sent it on which connection,
// what it asks, where its answer goes, and — once admitted on a grant or posture assertion — the
// grounds it rests on, which end it when they end (SPEC "Streams").
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { Generation } from '../generation.ts';
import type { RouteMatch } from '../routing/route-table.ts';
import { acceptableRequestId } from '../forward/headers.ts';
import type { AccessLog, AccessRecord } from '../telemetry/access-log.ts';
import type { ClientConnection } from './client-connection.ts';
import type { Bound, CutReason } from './open-exchanges.ts';
import type { Protocol, Reply } from './reply.ts';

/** The `route` label of requests refused before a route was chosen. */
export const UNROUTED = 'none';

export interface RequestInit {
  readonly method: string;
  /** The request-target as received (`req.url`, `:path`). */
  readonly target: string;
  readonly headers: IncomingHttpHeaders;
  /** The request's fields as received, [name, value, …], without HTTP/2 pseudo-headers. */
  readonly fields: readonly string[];
  /** HTTP/1.1's Connection header (it names more hop-by-hop fields). */
  readonly connectionHeader: string | undefined;
  readonly body: Readable | null;
  /** The body's length as framed by the client: a number, `CHUNKED`, or undefined for none. */
  readonly bodyLength: number | undefined;
}

export class Exchange implements Bound {
  readonly connection: ClientConnection;
  readonly generation: Generation;
  readonly protocol: Protocol;
  readonly requestId: string;
  readonly request: RequestInit;
  readonly startedMs: number;
  /** Filled in as the request passes the stages; written when its answer ends (access log on). */
  readonly access: AccessRecord | undefined;
  /** Called once when the exchange has ended, whichever way (a shared function, not a closure). */
  readonly ended: (x: Exchange) => void;
  reply!: Reply;
  match: RouteMatch | undefined;
  /** The normalised path plus the original query: what the service is sent. */
  upstreamPath = '';
  /** The client sent `Expect: 100-continue`: it is invited to send its body only once allowed. */
  expectsContinue = false;
  /** A framing or pseudo-header problem found on arrival: refused as bad_request after the peer check. */
  malformed: string | undefined;
  /** A JSON-RPC body read whole before its calls were decided: forwarded as it came. */
  bufferedBody: Buffer | undefined;
  /** When forwarding began (performance.now()), for the upstream latency histogram. */
  forwardedAt = 0;
  // Bound: set when the exchange is admitted on a grant or posture assertion.
  deadlineMs = Infinity;
  deadlineReason: CutReason = 'grant_expired';
  jti: string | undefined;
  onPosture = false;
  /** Whether it is tracked by OpenExchanges (and must leave it when it ends). */
  tracked = false;
  /** OpenExchanges' place for it (Bound): declared here so the object has them from the start. */
  openList: Bound[] | undefined = undefined;
  openSlot = -1;

  constructor(connection: ClientConnection, generation: Generation, protocol: Protocol, request: RequestInit, access: AccessLog | undefined, ended: (x: Exchange) => void) {
    this.connection = connection;
    this.generation = generation;
    this.protocol = protocol;
    this.request = request;
    const inboundId = request.headers['x-request-id'];
    this.requestId = acceptableRequestId(inboundId) ? inboundId : randomUUID();
    this.startedMs = performance.now();
    this.access = access?.begin(this.requestId, connection.peerId, request.method, protocol);
    this.ended = ended;
  }

  get peerId(): string {
    return this.connection.peerId;
  }

  get routeName(): string {
    return this.match?.route.name ?? UNROUTED;
  }

  cut(reason: CutReason): void {
    this.tracked = false;
    this.reply.cut(reason, this.requestId);
  }
}

const EXCHANGE = Symbol('portcullis.exchange');
type Carrier = { [EXCHANGE]?: Exchange };

/** Ties `x` to the object whose 'close' ends it (a response, a stream, a socket): one shared listener. */
export function endsWith(x: Exchange, carrier: { on(event: 'close', listener: () => void): unknown }): void {
  (carrier as unknown as Carrier)[EXCHANGE] = x;
  // 'close' comes once for a response, a stream or a socket: on() spares once()'s wrapper closure per request.
  carrier.on('close', onCarrierClose);
}

function onCarrierClose(this: Carrier): void {
  const x = this[EXCHANGE]!;
  x.ended(x);
}
