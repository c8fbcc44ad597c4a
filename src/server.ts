// The proxy, in request order: TLS handshake → peer identity (once per connection) → path
// normalisation → route → authorization (privileged routes only) → forward to the service.
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import { ServerResponse, STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Config } from './config/schema.ts';
import { denial, type Denial } from './decision/denial.ts';
import type { Authorizer, Verdict } from './decision/authorizer.ts';
import type { Pdp } from './pdp/pdp.ts';
import { PeerVerifier, type PeerIdentity } from './identity/peer-verifier.ts';
import type { IdentityMaterial } from './identity/svid-source.ts';
import { SvidError } from './identity/x509-svid.ts';
import { refuseRenegotiation, TLS_POLICY } from './identity/tls-policy.ts';
import type { RouteMatch, RouteTable } from './routing/route-table.ts';
import { isBadPath, normaliseTarget } from './routing/normalise-path.ts';
import { acceptableRequestId, badFraming, xfcc, type RequestHeaderFilter } from './forward/headers.ts';
import type { Upstream } from './forward/upstream.ts';
import { rawDenialResponse, writeDenial } from './forward/deny-response.ts';
import type { Metrics } from './telemetry/metrics.ts';
import type { HistogramCell } from './telemetry/fast-histogram.ts';
import type { Logger } from './telemetry/logger.ts';
import type { AccessLog, AccessRecord } from './telemetry/access-log.ts';

/** Everything built from one config load; replaced as a whole on reload. */
export interface Generation {
  readonly id: number;
  readonly config: Config;
  readonly routes: RouteTable;
  readonly headerFilter: RequestHeaderFilter;
  readonly upstream: Upstream;
  readonly authorizer: Authorizer;
  readonly pdp: Pdp;
}

/** The `route` label of requests refused before a route was chosen. */
const UNROUTED = 'none';

/**
 * One request through the proxy, made once when it arrives and handed to every stage (STYLE.md:
 * one object per request, instead of a row of positional arguments).
 */
class Exchange {
  readonly req: IncomingMessage;
  /** Where the answer goes: our response, or the raw socket of an upgrade request. */
  readonly to: ServerResponse | Duplex;
  /** For an upgrade: the bytes that came after its head. */
  readonly head: Buffer | undefined;
  readonly generation: Generation;
  readonly requestId: string;
  readonly peer: PeerIdentity | undefined;
  readonly startedMs: number;
  /** Filled in as the request passes the stages; written when its answer ends (access log on). */
  readonly access: AccessRecord | undefined;
  match: RouteMatch | undefined;
  /** The normalised path plus the original query: what the service is sent. */
  upstreamPath = '';
  /** The client sent `Expect: 100-continue`: it is invited to send its body only once allowed. */
  expectsContinue = false;

  constructor(req: IncomingMessage, to: ServerResponse | Duplex, head: Buffer | undefined, generation: Generation, access: AccessLog | undefined) {
    this.req = req;
    this.to = to;
    this.head = head;
    this.generation = generation;
    const inboundId = req.headers['x-request-id'];
    this.requestId = acceptableRequestId(inboundId) ? inboundId : randomUUID();
    this.peer = (req.socket as IdentifiedSocket)[PEER];
    this.startedMs = performance.now();
    this.access = access?.begin(this.requestId, this.peer?.svid.id.uri ?? '', req.method ?? '', 'http1');
  }

  get routeName(): string {
    return this.match?.route.name ?? UNROUTED;
  }
}

/** `Upgrade: a, b/2`: every protocol offered must be one we tunnel, or the service could pick another. */
function upgradeAllowed(value: string, allowed: readonly string[]): boolean {
  if (value.length === 0 || value.length > 256) return false;
  for (const offer of value.split(',')) {
    const token = offer.trim();
    const slash = token.indexOf('/');
    const name = (slash === -1 ? token : token.slice(0, slash)).toLowerCase();
    if (!/^[a-z0-9!#$%&'*+.^_`|~-]{1,64}$/.test(name) || (slash !== -1 && !/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$/.test(token.slice(slash + 1)))) return false;
    if (name === 'h2c' || !allowed.includes(name)) return false;
  }
  return true;
}

const PEER = Symbol('portcullis.peer');
const XFCC = Symbol('portcullis.xfcc');
/** A connection carries its peer's identity and its XFCC value, both computed once per connection. */
type IdentifiedSocket = TLSSocket & { [PEER]?: PeerIdentity; [XFCC]?: { readonly by: string; readonly value: string } };

/**
 * Bounded reasons for handshake failures the TLS stack reports (metric label values). A chain
 * the TLS stack refuses leaves its verdict on the socket's `authorizationError`.
 */
function handshakeReason(error: NodeJS.ErrnoException, socket: TLSSocket | undefined): string {
  const verify = String(socket?.authorizationError ?? '');
  if (verify === 'CERT_HAS_EXPIRED') return 'expired';
  if (verify === 'CERT_NOT_YET_VALID') return 'not_yet_valid';
  if (verify !== '') return 'untrusted_chain';
  const code = error.code ?? '';
  if (code.includes('PEER_DID_NOT_RETURN_A_CERTIFICATE') || code.includes('NO_CERTIFICATE')) return 'no_client_cert';
  if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT') return 'timeout';
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'connection_reset';
  if (code.startsWith('ERR_SSL_')) return 'protocol_error';
  return 'other';
}

export interface ProxyOptions {
  readonly generation: Generation;
  readonly identity: IdentityMaterial;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** `accessLog.file`; undefined when off. */
  readonly accessLog?: AccessLog | undefined;
}

export class Proxy {
  readonly server: Server;
  private generation: Generation;
  private identity: IdentityMaterial;
  private verifier: PeerVerifier;
  private readonly metrics: Metrics;
  private readonly logger: Logger;
  private readonly accessLog: AccessLog | undefined;
  private draining = false;
  private readonly upstreamCell: HistogramCell;
  /** Open tunnels (WebSocket…) admitted on a grant: a revocation closes them. */
  private readonly grantTunnels = new Set<{ readonly jti: string; readonly sub: string; readonly socket: Duplex }>();

  constructor(options: ProxyOptions) {
    this.generation = options.generation;
    this.identity = options.identity;
    this.metrics = options.metrics;
    this.logger = options.logger;
    this.accessLog = options.accessLog;
    this.upstreamCell = options.metrics.upstreamDuration.cell();
    this.verifier = new PeerVerifier(options.identity.bundles, options.generation.config.identity.allow);
    const limits = options.generation.config.limits;
    this.server = createServer(
      {
        ...this.tlsOptions(options.identity),
        maxHeaderSize: limits.maxHeaderBytes,
        handshakeTimeout: 10_000,
        headersTimeout: limits.headersTimeout,
        // Node enforces headersTimeout only when it checks its connections, every 30 s by default:
        // a 2 s limit held against slow heads for up to 30 s. Checked at a tenth of the limit.
        connectionsCheckingInterval: Math.min(1000, Math.max(100, Math.floor(limits.headersTimeout / 10))),
        keepAliveTimeout: limits.idleTimeout,
        requestTimeout: 0,
        // admit() refuses a missing or repeated Host with the SPEC's 400 (Node's own 400 has no body).
        requireHostHeader: false,
      },
      (req, res) => this.handle(req, res, false),
    );
    // With this listener Node no longer answers `Expect: 100-continue` by itself: the client is
    // invited to send its body only once the request is allowed (SPEC "To the service").
    this.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => this.handle(req, res, true));
    this.server.prependListener('secureConnection', (socket: TLSSocket) => this.identify(socket));
    this.server.on('secureConnection', refuseRenegotiation);
    this.server.on('tlsClientError', (error: NodeJS.ErrnoException, socket: TLSSocket) => {
      this.metrics.tlsHandshakeFailures.inc({ reason: handshakeReason(error, socket) });
      this.logger.debug({ code: error.code, detail: error.message }, 'TLS handshake failed');
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.handleUpgrade(req, socket, head));
    this.server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => this.onClientError(error, socket));
    this.metrics.svidExpiry.set(options.identity.notAfter.getTime() / 1000);
  }

  private tlsOptions(identity: IdentityMaterial) {
    return {
      cert: identity.certPem,
      key: identity.keyPem,
      // Every bundle's CAs, each name-constrained to the trust domain(s) whose bundle lists it, so
      // the TLS stack's chain check already means "the bundle of the peer's own trust domain".
      ca: identity.bundles.tlsRoots(),
      requestCert: true,
      // The handshake completes; identify() applies the SPIFFE rules and the TLS stack's verdict
      // (socket.authorized) and drops the connection before a byte is read, counting one precise
      // reason (with rejectUnauthorized: true, Node drops such a socket with no reason at all).
      rejectUnauthorized: false,
      // TLS 1.2 and 1.3, ECDHE + AEAD only (SPEC step 1).
      ...TLS_POLICY,
      ALPNProtocols: ['http/1.1'],
    };
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        const address = this.server.address();
        resolve(typeof address === 'object' && address ? address.port : port);
      });
    });
  }

  get currentGeneration(): Generation {
    return this.generation;
  }

  /** Swaps the config generation; requests in flight finish on the one they started with. */
  useGeneration(generation: Generation): void {
    const previous = this.generation;
    this.generation = generation;
    if (previous.config.identity.allow.join('\n') !== generation.config.identity.allow.join('\n')) {
      this.verifier = new PeerVerifier(this.identity.bundles, generation.config.identity.allow);
    }
  }

  /** New SVID or bundles: new connections use them; existing connections carry on. */
  useIdentity(identity: IdentityMaterial): void {
    const bundleChanged = identity.bundles.fingerprint !== this.identity.bundles.fingerprint;
    this.identity = identity;
    this.server.setSecureContext(this.tlsOptions(identity));
    if (bundleChanged) {
      // Tickets issued under the old bundle must not resume: new ticket keys force a full handshake.
      this.server.setTicketKeys(randomBytes(48));
      this.verifier = new PeerVerifier(identity.bundles, this.generation.config.identity.allow);
    }
    this.metrics.svidExpiry.set(identity.notAfter.getTime() / 1000);
  }

  private identify(socket: IdentifiedSocket): void {
    try {
      socket[PEER] = this.verifier.verify(socket);
    } catch (error) {
      // Not a valid X509-SVID of a trusted domain: the connection ends before a byte is read. A
      // certificate our parsers choke on is refused too; it must never take the process down.
      const rejection = error instanceof SvidError ? error.rejection : 'bad_certificate';
      this.metrics.tlsHandshakeFailures.inc({ reason: rejection });
      this.logger.info({ rejection, detail: (error as Error).message, remote: socket.remoteAddress }, 'peer certificate refused');
      socket.destroy();
    }
  }

  private onClientError(error: NodeJS.ErrnoException, socket: Socket): void {
    const code = error.code ?? '';
    if (code === 'HPE_CLOSED_CONNECTION') {
      // Bytes after a request that said `Connection: close` (RFC 9112 9.6): that request is
      // answered, then the connection closes; nothing after it is read, let alone processed.
      this.metrics.badRequests.inc({ reason: 'malformed' });
      socket.pause();
      if ((socket as Socket & { _httpMessage?: unknown })._httpMessage == null) socket.destroy();
      return;
    }
    if (!code.startsWith('HPE_') && code !== 'ERR_HTTP_REQUEST_TIMEOUT') {
      // A socket or TLS error, not a bad request: already counted or nothing to answer.
      socket.destroy();
      return;
    }
    const tooLarge = code === 'HPE_HEADER_OVERFLOW';
    // A request target the HTTP parser refuses (raw bytes above 0x7f, controls) is a bad path, like those our own parser refuses.
    const badTarget = code === 'HPE_INVALID_URL';
    this.metrics.badRequests.inc({ reason: tooLarge ? 'headers_too_large' : badTarget ? 'bad_path' : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'timeout' : 'malformed' });
    // An answer still going out on this connection (a pipelined request was malformed) must not
    // get our 400 spliced into it, nor answer the wrong request: cut the connection instead.
    if (socket.writable && (socket as Socket & { _httpMessage?: unknown })._httpMessage == null) {
      const requestId = randomUUID();
      const refusal = tooLarge ? { ...denial('bad_request'), status: 431, error: 'the request headers are too large' } : denial(badTarget ? 'bad_path' : 'bad_request');
      const answer = rawDenialResponse(refusal.status, tooLarge ? 'Request Header Fields Too Large' : 'Bad Request', refusal, requestId);
      socket.end(answer);
      this.metrics.requests.cell(UNROUTED, String(refusal.status)).n++;
      const peer = (socket as IdentifiedSocket)[PEER]?.svid.id.uri ?? '';
      this.logRefusal(requestId, peer, UNROUTED, refusal, code);
      if (this.accessLog) {
        const record = this.accessLog.begin(requestId, peer, '', 'http1');
        record.status = refusal.status;
        record.reason = refusal.reason;
        record.bytes = answer.length - answer.indexOf('\r\n\r\n') - 4;
        this.accessLog.end(record, performance.now());
      }
    } else {
      socket.destroy();
    }
  }

  /**
   * SPEC "Responses": every refusal can be found by its request id. Privileged decisions are in
   * the audit log; every other refusal is logged here, at info.
   */
  private logRefusal(requestId: string, peer: string, route: string, denied: Denial, detail?: string): void {
    this.logger.info({ request_id: requestId, peer, route, status: denied.status, reason: denied.reason, ...(detail ? { detail } : {}) }, 'request refused');
  }

  private handle(req: IncomingMessage, res: ServerResponse, expectsContinue: boolean): void {
    if (this.draining) res.shouldKeepAlive = false;
    const x = new Exchange(req, res, undefined, this.generation, this.accessLog);
    x.expectsContinue = expectsContinue;
    if (x.access) this.logWhenDone(x, res);
    this.admit(x);
  }

  /** Access log: the line is written when the answer has gone (or the client has). */
  private logWhenDone(x: Exchange, to: ServerResponse | Duplex): void {
    to.once('close', () => {
      const record = x.access!;
      if (to instanceof ServerResponse) record.status = to.statusCode;
      this.accessLog!.end(record, x.startedMs);
    });
  }

  /** An upgrade request (WebSocket): admitted exactly like any request, then tunnelled. */
  private handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // An upgrade pipelined behind a request still being answered would take over the connection
    // mid-answer (its 101 or refusal interleaved with, or replacing, that answer): cut it instead.
    if ((socket as Duplex & { _httpMessage?: unknown })._httpMessage != null) {
      this.metrics.badRequests.inc({ reason: 'malformed' });
      socket.destroy();
      return;
    }
    const x = new Exchange(req, socket, head, this.generation, this.accessLog);
    if (x.access) this.logWhenDone(x, socket);
    const length = req.headers['content-length'];
    // Only the protocols in routing.upgrades are tunnelled (SPEC "To the service"): a service
    // that switches to anything it is asked for (h2c smuggling) would otherwise be handed the
    // client's next bytes unjudged. An upgrade request with a body has no honest reading either:
    // its bytes would reach the service unframed, ahead of the new protocol.
    if (!upgradeAllowed(req.headers.upgrade ?? '', x.generation.config.routing.upgrades) || req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0')) {
      this.metrics.badRequests.inc({ reason: 'malformed' });
      this.refuse(x, denial('bad_request'), false);
      return;
    }
    this.admit(x);
  }

  /**
   * The checks every request passes, in order: peer allowed, path normalised, route found, and
   * for a privileged route the decision.
   */
  private admit(x: Exchange): void {
    const { req, generation, peer } = x;
    if (!peer || !peer.allowed) {
      this.refuse(x, denial('peer_not_allowed'), false);
      return;
    }
    if (badFraming(req.rawHeaders, req.httpVersion)) {
      // Where this request ends is in doubt, so nothing after it on this connection can be trusted.
      if (x.to instanceof ServerResponse) x.to.shouldKeepAlive = false;
      this.metrics.badRequests.inc({ reason: 'malformed' });
      this.refuse(x, denial('bad_request'), false);
      return;
    }
    const target = normaliseTarget(req.url ?? '', generation.config.routing);
    if (isBadPath(target)) {
      this.metrics.badRequests.inc({ reason: 'bad_path' });
      this.refuse(x, denial('bad_path'), false);
      return;
    }
    if (x.access) x.access.path = target.path;
    const match = generation.routes.match(req.method ?? '', target.path);
    if (!match) {
      this.refuse(x, denial('no_route'), false);
      return;
    }
    x.match = match;
    if (x.access) x.access.route = match.route.name;
    x.upstreamPath = target.query === '' ? target.path : target.path + target.query;
    if (!match.route.privileged) {
      this.pass(x, undefined, undefined);
      return;
    }
    const verdict = generation.authorizer.authorize({
      peer,
      route: match.route,
      resource: match.resource,
      method: req.method ?? '',
      headers: req.headers,
      requestId: x.requestId,
      path: x.upstreamPath,
      peerAddress: req.socket.remoteAddress ?? '',
      peerPort: req.socket.remotePort ?? 0,
    });
    if (verdict instanceof Promise) {
      verdict.then(
        (v) => this.afterVerdict(x, v),
        (error: unknown) => {
          this.logger.error({ err: error, request_id: x.requestId }, 'authorizer failed');
          this.refuse(x, denial('pdp_unavailable'), false);
        },
      );
    } else {
      this.afterVerdict(x, verdict);
    }
  }

  private afterVerdict(x: Exchange, verdict: Verdict): void {
    if (verdict.allow) this.pass(x, verdict.grantId, verdict.grantExpMs);
    // The decision path has written this refusal to the audit log.
    else this.refuse(x, verdict.denial, true);
  }

  /** Answers the exchange with a SPEC denial; `audited` when the decision path logged it already. */
  private refuse(x: Exchange, denied: Denial, audited: boolean): void {
    const route = x.routeName;
    if (x.access) x.access.reason = denied.reason;
    if (!audited) this.logRefusal(x.requestId, x.peer?.svid.id.uri ?? '', route, denied);
    const to = x.to;
    if (to instanceof ServerResponse) {
      // A client that was not invited to send its body may or may not send it: after the
      // refusal nothing on this connection can be read as the next request.
      if (x.expectsContinue) to.shouldKeepAlive = false;
      const bytes = writeDenial(to, denied, x.requestId);
      if (x.access) x.access.bytes = bytes;
    } else {
      const answer = rawDenialResponse(denied.status, STATUS_CODES[denied.status] ?? 'Error', denied, x.requestId);
      to.end(answer);
      if (x.access) {
        x.access.status = denied.status;
        x.access.bytes = answer.length - answer.indexOf('\r\n\r\n') - 4;
      }
    }
    this.metrics.requests.cell(route, String(denied.status)).n++;
  }

  private pass(x: Exchange, grantId: string | undefined, grantExpMs: number | undefined): void {
    const { req, generation, to } = x;
    const peer = x.peer!;
    if (to instanceof ServerResponse) {
      if (x.expectsContinue) to.writeContinue();
      this.forward(x, to, grantId);
      return;
    }
    const headers = this.serviceHeaders(req, generation, peer, x.requestId, grantId);
    const route = x.routeName;
    // The client left while the decision was being made: nothing to open, nothing to track.
    if (to.destroyed) return;
    const bytesBefore = x.access ? (req.socket.bytesWritten ?? 0) : 0;
    // A head that cannot be sent safely is refused by the pool as any request's is (502).
    generation.upstream.upgrade(
      req,
      to,
      x.head ?? Buffer.alloc(0),
      x.upstreamPath,
      headers,
      (status) => {
        this.metrics.requests.cell(route, status).n++;
        if (x.access) {
          x.access.status = Number(status);
          // The tunnel owns the connection from here: what it relays is this exchange's.
          to.once('close', () => (x.access!.bytes = (req.socket.bytesWritten ?? 0) - bytesBefore));
        }
      },
      (reason) => this.refuse(x, denial(reason), false),
    );
    if (grantId !== undefined && grantExpMs !== undefined) {
      // A tunnel opened on a grant closes when the grant expires or is revoked: JIT access ends on time.
      const expiry = setTimeout(() => {
        this.metrics.grantExpired.inc();
        to.destroy();
      }, Math.max(0, grantExpMs - Date.now()));
      expiry.unref();
      const tunnel = { jti: grantId, sub: peer.svid.id.uri, socket: to };
      this.grantTunnels.add(tunnel);
      to.once('close', () => {
        clearTimeout(expiry);
        this.grantTunnels.delete(tunnel);
      });
    }
  }

  /**
   * Revocation reaches tunnels already open: those opened on grant `jti`, or on any grant of
   * `sub` (a grant's sub is always its peer), close now. Returns how many were closed.
   */
  closeTunnels(revoked: { readonly jti?: string; readonly sub?: string }): number {
    let closed = 0;
    for (const tunnel of this.grantTunnels) {
      if ((revoked.jti !== undefined && tunnel.jti === revoked.jti) || (revoked.sub !== undefined && tunnel.sub === revoked.sub)) {
        this.grantTunnels.delete(tunnel);
        tunnel.socket.destroy();
        closed++;
      }
    }
    return closed;
  }

  /** The connection's XFCC value, made on its first request (again only if our own ID changed). */
  private xfccOf(socket: IdentifiedSocket, peer: PeerIdentity): string {
    const by = this.identity.id.uri;
    let memo = socket[XFCC];
    if (memo === undefined || memo.by !== by) socket[XFCC] = memo = { by, value: xfcc(by, peer.svid.leafSha256Hex, peer.svid.id.uri) };
    return memo.value;
  }

  /** The request headers for the service: the inbound ones filtered, plus SPEC's identity headers. */
  private serviceHeaders(req: IncomingMessage, generation: Generation, peer: PeerIdentity, requestId: string, grantId: string | undefined): string[] {
    const headers = generation.headerFilter.filter(req.rawHeaders, req.headers.connection);
    headers.push(
      'x-forwarded-client-cert', this.xfccOf(req.socket as IdentifiedSocket, peer),
      'x-request-id', requestId,
      'x-forwarded-for', req.socket.remoteAddress ?? '',
      'x-forwarded-proto', 'https',
    );
    if (grantId !== undefined) headers.push('x-jit-grant-id', grantId);
    return headers;
  }

  private forward(x: Exchange, res: ServerResponse, grantId: string | undefined): void {
    const { req, generation } = x;
    const headers = this.serviceHeaders(req, generation, x.peer!, x.requestId, grantId);
    const started = performance.now();
    const route = x.routeName;
    generation.upstream.forward(
      req,
      res,
      x.upstreamPath,
      headers,
      (status) => {
        this.metrics.upstreamDuration.observe(this.upstreamCell, (performance.now() - started) / 1000);
        this.metrics.requests.cell(route, String(status)).n++;
      },
      (reason, error) => {
        if (res.destroyed) return;
        // Logged here with the cause, so the refusal below is not logged twice.
        this.logger.warn({ request_id: x.requestId, peer: x.peer!.svid.id.uri, route, status: denial(reason).status, reason, code: error.code, detail: error.message }, 'upstream request failed');
        this.refuse(x, denial(reason), true);
      },
      x.access,
    );
  }

  /**
   * Graceful stop: no new connections; requests in flight finish (their responses say
   * `Connection: close`); idle keep-alive connections close now; whatever is still open at the
   * deadline is cut. Resolves when every connection is gone.
   */
  close(deadlineMs = 10_000): Promise<void> {
    this.draining = true;
    return new Promise((resolve) => {
      const deadline = setTimeout(() => this.server.closeAllConnections(), deadlineMs);
      // A keep-alive connection whose last response ends during the drain turns idle: close it then.
      const sweep = setInterval(() => this.server.closeIdleConnections(), 50);
      this.server.close(() => {
        clearTimeout(deadline);
        clearInterval(sweep);
        resolve();
      });
      this.server.closeIdleConnections();
    });
  }
}
