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
import type { RouteMatch, RouteTable } from './routing/route-table.ts';
import { isBadPath, normaliseTarget } from './routing/normalise-path.ts';
import { acceptableRequestId, badFraming, xfcc, type RequestHeaderFilter } from './forward/headers.ts';
import type { Upstream } from './forward/upstream.ts';
import { openTunnel, upgradeHead } from './forward/upgrade-tunnel.ts';
import { rawDenialResponse, writeDenial } from './forward/deny-response.ts';
import type { Metrics } from './telemetry/metrics.ts';
import type { HistogramCell } from './telemetry/fast-histogram.ts';
import type { Logger } from './telemetry/logger.ts';

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
}

export class Proxy {
  readonly server: Server;
  private generation: Generation;
  private identity: IdentityMaterial;
  private verifier: PeerVerifier;
  private readonly metrics: Metrics;
  private readonly logger: Logger;
  private draining = false;
  private readonly upstreamCell: HistogramCell;
  /** Open tunnels (WebSocket…) admitted on a grant: a revocation closes them. */
  private readonly grantTunnels = new Set<{ readonly jti: string; readonly sub: string; readonly socket: Duplex }>();
  // Gauges of connections, requests and tunnels: one listener each, shared, so counting
  // allocates nothing per request (on(), not once(): once() wraps the listener every time).
  private readonly connectionClosed = (): void => void this.metrics.activeConnections.n--;
  private readonly requestClosed = (): void => void this.metrics.requestsInFlight.n--;
  private readonly tunnelClosed = (): void => void this.metrics.openTunnels.n--;

  constructor(options: ProxyOptions) {
    this.generation = options.generation;
    this.identity = options.identity;
    this.metrics = options.metrics;
    this.logger = options.logger;
    this.upstreamCell = options.metrics.upstreamDuration.cell();
    this.verifier = new PeerVerifier(options.identity.bundles, options.generation.config.identity.allow);
    const limits = options.generation.config.limits;
    this.server = createServer(
      {
        ...this.tlsOptions(options.identity),
        maxHeaderSize: limits.maxHeaderBytes,
        handshakeTimeout: 10_000,
        headersTimeout: limits.headersTimeout,
        keepAliveTimeout: limits.idleTimeout,
        requestTimeout: 0,
        // admit() refuses a missing or repeated Host with the SPEC's 400 (Node's own 400 has no body).
        requireHostHeader: false,
      },
      (req, res) => this.handle(req, res),
    );
    this.server.prependListener('secureConnection', (socket: TLSSocket) => this.identify(socket));
    // Counted before identify() runs, so a connection it refuses leaves with its own 'close'.
    this.server.prependListener('secureConnection', (socket: TLSSocket) => {
      this.metrics.activeConnections.n++;
      socket.on('close', this.connectionClosed);
    });
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
      minVersion: 'TLSv1.2' as const,
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
      socket.end(
        tooLarge
          ? rawDenialResponse(431, 'Request Header Fields Too Large', { ...denial('bad_request'), status: 431, error: 'the request headers are too large' }, requestId)
          : rawDenialResponse(400, 'Bad Request', denial(badTarget ? 'bad_path' : 'bad_request'), requestId),
      );
      this.metrics.requests.cell(UNROUTED, tooLarge ? '431' : '400').n++;
    } else {
      socket.destroy();
    }
  }

  private deny(res: ServerResponse, route: string, denied: Denial, requestId: string): void {
    writeDenial(res, denied, requestId);
    this.metrics.requests.cell(route, String(denied.status)).n++;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    if (this.draining) res.shouldKeepAlive = false;
    // In flight until the response is finished, refused or cut: 'close' comes in every case.
    this.metrics.requestsInFlight.n++;
    res.on('close', this.requestClosed);
    this.admit(req, res, undefined);
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
    const upgrade = req.headers.upgrade ?? '';
    const length = req.headers['content-length'];
    // An upgrade request with a body has no honest reading: its bytes would reach the service
    // unframed, ahead of the new protocol. Refused, like a malformed upgrade token.
    if (!/^[A-Za-z0-9!#$%&'*+.^_`|~/-]{1,64}$/.test(upgrade) || req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0')) {
      this.metrics.badRequests.inc({ reason: 'malformed' });
      this.refuse(socket, UNROUTED, denial('bad_request'), randomUUID());
      return;
    }
    this.admit(req, socket, head);
  }

  /**
   * The checks every request passes, in order: peer allowed, path normalised, route found, and
   * for a privileged route the decision. `to` is where the answer goes: our response for a
   * request, the raw socket for an upgrade (with the bytes that came after its head).
   */
  private admit(req: IncomingMessage, to: ServerResponse | Duplex, head: Buffer | undefined): void {
    const generation = this.generation;
    const inboundId = req.headers['x-request-id'];
    const requestId = acceptableRequestId(inboundId) ? inboundId : randomUUID();
    const peer = (req.socket as IdentifiedSocket)[PEER];
    if (!peer || !peer.allowed) {
      this.refuse(to, UNROUTED, denial('peer_not_allowed'), requestId);
      return;
    }
    if (badFraming(req.rawHeaders, req.httpVersion)) {
      // Where this request ends is in doubt, so nothing after it on this connection can be trusted.
      if (to instanceof ServerResponse) to.shouldKeepAlive = false;
      this.metrics.badRequests.inc({ reason: 'malformed' });
      this.refuse(to, UNROUTED, denial('bad_request'), requestId);
      return;
    }
    const target = normaliseTarget(req.url ?? '', generation.config.routing);
    if (isBadPath(target)) {
      this.metrics.badRequests.inc({ reason: 'bad_path' });
      this.refuse(to, UNROUTED, denial('bad_path'), requestId);
      return;
    }
    const match = generation.routes.match(req.method ?? '', target.path);
    if (!match) {
      this.refuse(to, UNROUTED, denial('no_route'), requestId);
      return;
    }
    const upstreamPath = target.query === '' ? target.path : target.path + target.query;
    if (!match.route.privileged) {
      this.pass(req, to, head, generation, match, peer, upstreamPath, requestId, undefined);
      return;
    }
    const verdict = generation.authorizer.authorize({
      peer,
      route: match.route,
      resource: match.resource,
      method: req.method ?? '',
      headers: req.headers,
      requestId,
      path: upstreamPath,
      peerAddress: req.socket.remoteAddress ?? '',
      peerPort: req.socket.remotePort ?? 0,
    });
    if (verdict instanceof Promise) {
      verdict.then(
        (v) => this.afterVerdict(v, req, to, head, generation, match, peer, upstreamPath, requestId),
        (error: unknown) => {
          this.logger.error({ err: error, request_id: requestId }, 'authorizer failed');
          this.refuse(to, match.route.name, denial('pdp_unavailable'), requestId);
        },
      );
    } else {
      this.afterVerdict(verdict, req, to, head, generation, match, peer, upstreamPath, requestId);
    }
  }

  private afterVerdict(verdict: Verdict, req: IncomingMessage, to: ServerResponse | Duplex, head: Buffer | undefined, generation: Generation, match: RouteMatch, peer: PeerIdentity, path: string, requestId: string): void {
    if (verdict.allow) this.pass(req, to, head, generation, match, peer, path, requestId, verdict.grantId, verdict.grantExpMs);
    else this.refuse(to, match.route.name, verdict.denial, requestId);
  }

  private refuse(to: ServerResponse | Duplex, route: string, denied: Denial, requestId: string): void {
    if (to instanceof ServerResponse) {
      this.deny(to, route, denied, requestId);
      return;
    }
    to.end(rawDenialResponse(denied.status, STATUS_CODES[denied.status] ?? 'Error', denied, requestId));
    this.metrics.requests.cell(route, String(denied.status)).n++;
  }

  private pass(req: IncomingMessage, to: ServerResponse | Duplex, head: Buffer | undefined, generation: Generation, match: RouteMatch, peer: PeerIdentity, path: string, requestId: string, grantId: string | undefined, grantExpMs?: number): void {
    if (to instanceof ServerResponse) {
      this.forward(req, to, generation, match, peer, path, requestId, grantId);
      return;
    }
    const headers = this.serviceHeaders(req, generation, peer, requestId, grantId);
    const route = match.route.name;
    const method = req.method ?? 'GET';
    const upstream = generation.upstream;
    const serviceHead = upgradeHead(method, path, headers, req.headers.upgrade ?? '', upstream.hostHeader);
    if (serviceHead === undefined) {
      // A header that could not be sent safely (the forwarding pool refuses the same): as the pool does, 502.
      this.refuse(to, route, denial('upstream_unavailable'), requestId);
      return;
    }
    // The client left while the decision was being made: nothing to open, nothing to track.
    if (to.destroyed) return;
    openTunnel(
      { connect: () => upstream.connect(), connectTimeoutMs: generation.config.upstream.connectTimeout, timeoutMs: generation.config.upstream.timeout },
      to,
      method,
      serviceHead,
      head ?? Buffer.alloc(0),
      (status) => {
        this.metrics.requests.cell(route, status).n++;
        // Switched: an open tunnel until the client's side closes (a relayed refusal is none).
        if (status === '101' && !to.closed) {
          this.metrics.openTunnels.n++;
          to.on('close', this.tunnelClosed);
        }
      },
      (reason) => this.refuse(to, route, denial(reason), requestId),
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

  private forward(req: IncomingMessage, res: ServerResponse, generation: Generation, match: RouteMatch, peer: PeerIdentity, path: string, requestId: string, grantId: string | undefined): void {
    const headers = this.serviceHeaders(req, generation, peer, requestId, grantId);
    const started = performance.now();
    const route = match.route.name;
    generation.upstream.forward(
      req,
      res,
      path,
      headers,
      (status) => {
        this.metrics.upstreamDuration.observe(this.upstreamCell, (performance.now() - started) / 1000);
        this.metrics.requests.cell(route, String(status)).n++;
      },
      (reason, error) => {
        if (res.destroyed) return;
        this.logger.warn({ request_id: requestId, route, reason, code: error.code, detail: error.message }, 'upstream request failed');
        this.deny(res, route, denial(reason), requestId);
      },
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
