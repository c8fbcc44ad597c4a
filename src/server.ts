// The listener, in request order: TLS handshake (ALPN h2 or http/1.1) → peer identity, once per
// connection → one Exchange per request, whatever the protocol (an HTTP/1.1 request, an upgrade,
// an HTTP/2 stream, a gRPC call) → admit: peer allowed, framing, path normalised, route, and for
// a privileged route the decision → forward to the service, the answer relayed into the
// exchange's Reply → cut when its grounds end (OpenExchanges).
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { constants as h2, createServer as createH2Server, type Http2Server, type Http2Session, type IncomingHttpHeaders as H2Headers, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Config } from './config/schema.ts';
import type { Generation } from './generation.ts';
import { badRequest, denial, type Denial } from './decision/denial.ts';
import type { Verdict } from './decision/authorizer.ts';
import { PeerVerifier, type PeerIdentity } from './identity/peer-verifier.ts';
import type { IdentityMaterial } from './identity/svid-source.ts';
import { SvidError } from './identity/x509-svid.ts';
import { refuseRenegotiation, TLS_POLICY } from './identity/tls-policy.ts';
import { isBadPath, normaliseTarget } from './routing/normalise-path.ts';
import { CHUNKED, type UpstreamError } from './forward/upstream.ts';
import { rawDenialResponse } from './forward/deny-response.ts';
import { ClientConnection } from './exchange/client-connection.ts';
import { endsWith, Exchange, UNROUTED, type RequestInit } from './exchange/exchange.ts';
import { Http1Connection, type Http1Handler, type Http1Limits, type Http1Refused } from './http1/http1-connection.ts';
import { Http1Connections } from './http1/http1-connections.ts';
import { headersObject } from './http1/node-headers.ts';
import type { RequestBody } from './http1/request-body.ts';
import type { RequestHead } from './http1/request-head.ts';
import type { ResponseWriter } from './http1/response-writer.ts';
import { Http1Reply } from './exchange/http1-reply.ts';
import { GrpcReply, H2Reply } from './exchange/h2-reply.ts';
import { H2Watch } from './exchange/h2-watch.ts';
import { UpgradeReply } from './exchange/upgrade-reply.ts';
import { OpenExchanges, type Bound, type CutReason, type Revoked } from './exchange/open-exchanges.ts';
import type { RelayReply, ReplyEvents } from './exchange/reply.ts';
import { decideCalls, NOT_JSON, NOT_JSON_RPC, readBody, TOO_LARGE, type CallsOutcome } from './exchange/json-rpc-calls.ts';
import type { Metrics } from './telemetry/metrics.ts';
import type { HistogramCell } from './telemetry/fast-histogram.ts';
import type { Logger } from './telemetry/logger.ts';
import { auditTime, type AuditLog } from './telemetry/audit.ts';
import type { AccessLog } from './telemetry/access-log.ts';

export type { Generation } from './generation.ts';

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

/**
 * Fields per HTTP/1.1 head: Node's server kept the first 2,000 (maxHeadersCount) and dropped the
 * rest unseen; ours refuses a head with more (431), within limits.maxHeaderBytes as before.
 */
const HTTP1_MAX_FIELDS = 2000;

/**
 * How each refusal of the HTTP/1.1 reader is answered (SPEC "Responses"; as server.ts answered
 * Node's parser errors) and its `portcullis_bad_requests_total` reason.
 */
const HTTP1_REFUSALS: Readonly<Record<Http1Refused, { readonly denial: Denial; readonly counted: string }>> = {
  bad_request: { denial: denial('bad_request'), counted: 'malformed' },
  incomplete: { denial: denial('bad_request'), counted: 'malformed' },
  bytes_after_close: { denial: denial('bad_request'), counted: 'malformed' },
  expectation: { denial: badRequest(417, 'the request has an Expect other than 100-continue'), counted: 'malformed' },
  timeout: { denial: denial('bad_request'), counted: 'timeout' },
  bad_target: { denial: denial('bad_path'), counted: 'bad_path' },
  headers_too_large: { denial: badRequest(431, 'the request headers are too large'), counted: 'headers_too_large' },
};

/** gRPC over HTTP/2 (gRPC's PROTOCOL-HTTP2: `application/grpc` or `application/grpc+<codec>`); grpc-web is ordinary HTTP. */
function isGrpc(contentType: string | undefined): boolean {
  return contentType !== undefined && contentType.startsWith('application/grpc') && (contentType.length === 16 || contentType[16] === '+' || contentType[16] === ';');
}

/**
 * SPEC "Protocols and streams": every HTTP/2 limit set (node:http2 leaves concurrent streams
 * unbounded by default), and the flood defences of 2023-24 (Rapid Reset, CONTINUATION, SETTINGS
 * and PING floods) held to small numbers: a peer past them gets GOAWAY and is disconnected.
 */
function h2Options(limits: Config['limits']) {
  return {
    settings: { maxConcurrentStreams: limits.maxConcurrentStreams, maxHeaderListSize: limits.maxHeaderBytes, enablePush: false, enableConnectProtocol: false },
    maxHeaderListPairs: 128,
    maxSessionMemory: 10, // MB per session, nghttp2's buffers included
    maxOutstandingPings: 10,
    maxSettings: 32,
    maxSessionInvalidFrames: 100,
    maxSessionRejectedStreams: 100,
    // Rapid Reset (CVE-2023-44487): at most this many streams reset by the peer per second, after a burst.
    streamResetBurst: 200,
    streamResetRate: 100,
    peerMaxConcurrentStreams: 100,
    unknownProtocolTimeout: 10_000,
  };
}

const H2_FLAGS_END_STREAM = h2.NGHTTP2_FLAG_END_STREAM;


/** Distinct `tool` label values per JSON-RPC route. */
const MAX_TOOL_LABELS = 64;
const TOOL_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

export interface ProxyOptions {
  readonly generation: Generation;
  readonly identity: IdentityMaterial;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly audit: AuditLog;
  /** `accessLog.file`; undefined when off. */
  readonly accessLog?: AccessLog | undefined;
}

export class Proxy implements ReplyEvents<Exchange>, Http1Handler<ClientConnection> {
  readonly server: Server;
  private readonly h2: Http2Server;
  private generation: Generation;
  private identity: IdentityMaterial;
  private verifier: PeerVerifier;
  private readonly metrics: Metrics;
  private readonly logger: Logger;
  private readonly audit: AuditLog;
  private readonly accessLog: AccessLog | undefined;
  /** Shutting down: HTTP/1.1 answers say `Connection: close`, new HTTP/2 sessions get GOAWAY. */
  draining = false;
  /** Open HTTP/1.1 connections (read by our own parser: http1/), their limits checked by one timer. */
  private readonly http1: Http1Connections;
  private readonly http1Limits: Http1Limits;
  private readonly upstreamCell: HistogramCell;
  /** Every exchange and connection that must end when its grounds do: one timer for all. */
  readonly open: OpenExchanges;
  /** An HTTP/2 session's client connection (HTTP/1.1 connections carry theirs: Http1Connection.client). */
  private readonly connections = new WeakMap<Http2Session, ClientConnection>();
  private readonly sessions = new Set<ServerHttp2Session>();
  /** What each HTTP/2 session's timers and counters need to know of the streams nghttp2 opened (H2Watch). */
  private readonly watches = new WeakMap<Http2Session, H2Watch>();
  /** Per JSON-RPC route, the tool names given a label of their own. */
  private readonly toolNames = new Map<string, Set<string>>();
  /** The connection whose socket is being handed to the HTTP/2 server right now ('session' is synchronous). */
  private handingOver: ClientConnection | undefined;
  // Gauge bookkeeping: shared listeners, no closure per connection or request.
  private readonly connectionClosed = (): void => void this.metrics.activeConnections.n--;
  private readonly tunnelClosed = (): void => void this.metrics.openTunnels.n--;
  private readonly exchangeEnded = (x: Exchange): void => this.ended(x);

  constructor(options: ProxyOptions) {
    this.generation = options.generation;
    this.identity = options.identity;
    this.metrics = options.metrics;
    this.logger = options.logger;
    this.audit = options.audit;
    this.accessLog = options.accessLog;
    this.upstreamCell = options.metrics.upstreamDuration.cell();
    this.verifier = new PeerVerifier(options.identity.bundles);
    this.open = new OpenExchanges((bound, reason) => this.onCut(bound, reason));
    const { limits, listen } = options.generation.config;
    this.http1Limits = {
      maxHeaderBytes: limits.maxHeaderBytes,
      maxFields: HTTP1_MAX_FIELDS,
      headersTimeoutMs: limits.headersTimeout,
      idleTimeoutMs: limits.idleTimeout,
    };
    this.http1 = new Http1Connections(limits.headersTimeout);
    // A TLS listener: ALPN picks the protocol; an h2 connection is handed to the HTTP/2 server,
    // an http/1.1 one read by our own HTTP/1.1 reader (one port, one TLS stack, one identity).
    this.server = createServer({ ...this.tlsOptions(options.identity, listen.protocols), handshakeTimeout: 10_000 }, (socket: TLSSocket) => this.onConnection(socket));
    this.h2 = createH2Server(h2Options(limits));
    this.h2.on('session', (session: ServerHttp2Session) => this.onSession(session));
    this.h2.on('stream', (stream: ServerHttp2Stream, headers: H2Headers, flags: number) => this.onStream(stream, headers, flags));
    this.server.on('tlsClientError', (error: NodeJS.ErrnoException, socket: TLSSocket) => {
      this.metrics.tlsHandshakeFailures.inc({ reason: handshakeReason(error, socket) });
      this.logger.debug({ code: error.code, detail: error.message }, 'TLS handshake failed');
    });
    this.metrics.svidExpiry.set(options.identity.notAfter.getTime() / 1000);
  }

  private tlsOptions(identity: IdentityMaterial, protocols: readonly string[]) {
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
      ...TLS_POLICY,
      ALPNProtocols: [...protocols],
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

  /**
   * Swaps the config generation; requests in flight finish on the one they started with. The new
   * identity.allow applies to the next request of every open connection (SPEC step 1).
   */
  useGeneration(generation: Generation): void {
    this.generation = generation;
  }

  /** New SVID or bundles: new connections use them; existing connections carry on. */
  useIdentity(identity: IdentityMaterial): void {
    const bundleChanged = identity.bundles.fingerprint !== this.identity.bundles.fingerprint;
    this.identity = identity;
    this.server.setSecureContext(this.tlsOptions(identity, this.generation.config.listen.protocols));
    if (bundleChanged) {
      // Tickets issued under the old bundle must not resume: new ticket keys force a full handshake.
      this.server.setTicketKeys(randomBytes(48));
      this.verifier = new PeerVerifier(identity.bundles);
    }
    this.metrics.svidExpiry.set(identity.notAfter.getTime() / 1000);
  }

  /**
   * A revocation reaches what is already open (SPEC "Streams"): exchanges on the revoked grant
   * (jti), on any grant of the revoked peer (sub), or on the revoked peer's posture, are cut now.
   * Returns how many.
   */
  cutOpen(revoked: Revoked): number {
    return this.open.revoke(revoked);
  }

  // ---- connections -------------------------------------------------------------------------

  private onConnection(socket: TLSSocket): void {
    // Counted before identify() runs, so a connection it refuses leaves with its own 'close'.
    this.metrics.activeConnections.n++;
    socket.on('close', this.connectionClosed);
    refuseRenegotiation(socket);
    const peer = this.identify(socket);
    if (peer === undefined) return;
    const connection = new ClientConnection(peer, socket.remoteAddress ?? '', socket.remotePort ?? 0, () => socket.destroy());
    // SPEC step 1: the connection closes when the peer's SVID expires.
    this.open.add(connection);
    if (socket.alpnProtocol === 'h2') {
      socket.once('close', () => this.open.remove(connection));
      this.handingOver = connection;
      this.h2.emit('connection', socket);
      this.handingOver = undefined;
    } else {
      this.http1.add(new Http1Connection(socket, connection, this.http1Limits, this));
      if (this.draining) socket.destroy();
    }
  }

  private identify(socket: TLSSocket): PeerIdentity | undefined {
    try {
      return this.verifier.verify(socket);
    } catch (error) {
      // Not a valid X509-SVID of a trusted domain: the connection ends before a byte is read. A
      // certificate our parsers choke on is refused too; it must never take the process down.
      const rejection = error instanceof SvidError ? error.rejection : 'bad_certificate';
      this.metrics.tlsHandshakeFailures.inc({ reason: rejection });
      this.logger.info({ rejection, detail: (error as Error).message, remote: socket.remoteAddress }, 'peer certificate refused');
      socket.destroy();
      return undefined;
    }
  }

  private onSession(session: ServerHttp2Session): void {
    const connection = this.handingOver;
    if (connection === undefined) {
      session.destroy();
      return;
    }
    this.connections.set(session, connection);
    this.sessions.add(session);
    session.once('close', () => this.sessions.delete(session));
    // A peer that breaks the protocol or floods (nghttp2 and Node's limits above) is sent GOAWAY
    // and disconnected by node:http2; counted here.
    session.on('error', (error: NodeJS.ErrnoException) => {
      this.metrics.badRequests.inc({ reason: 'h2_protocol' });
      this.logger.info({ peer: connection.peerId, code: error.code, detail: error.message }, 'HTTP/2 session ended by a protocol error');
    });
    session.on('frameError', () => this.metrics.badRequests.inc({ reason: 'h2_protocol' }));
    const { idleTimeout, headersTimeout } = this.generation.config.limits;
    const watch = new H2Watch(session, (reason, n) => this.metrics.badRequests.inc({ reason }, n));
    this.watches.set(session, watch);
    // Streams nghttp2 refused before we saw them are counted when the peer hangs up; Node's own
    // 'close' listener on the socket would destroy the session (and its state) first.
    session.socket.prependOnceListener('close', () => watch.settle());
    // Re-armed by node:http2 on every stream event, frame and SETTINGS; fires once per quiet
    // spell, and `setTimeout(ms, cb)` would listen only once: on() keeps the limit for life.
    const period = Math.min(idleTimeout, headersTimeout);
    session.setTimeout(period);
    session.on('timeout', () => {
      const verdict = watch.quiet(period, idleTimeout, connection.openStreams);
      // A peer that never finished its preface or header block gets GOAWAY and the socket
      // closed now (close() would wait on the stream nghttp2 holds open for it).
      if (verdict === 'timeout') session.destroy();
      else if (verdict === 'idle') session.close();
      else session.setTimeout(period);
    });
    if (this.draining) session.close();
  }

  // ---- arrivals: one Exchange per request ----------------------------------------------------

  /** An HTTP/1.1 request (http1/http1-connection.ts has read its head): one Exchange. */
  request(http1: Http1Connection<ClientConnection>, head: RequestHead, body: RequestBody | null, writer: ResponseWriter): void {
    const x = new Exchange(http1.client, this.generation, 'http1', http1Request(head, body), this.accessLog, this.exchangeEnded);
    x.reply = new Http1Reply(x, writer, this, this.exchangeEnded);
    x.expectsContinue = head.expect === 'continue';
    // In flight until the answer has ended, was refused or cut: the writer says so in every case.
    this.metrics.requestsInFlight.n++;
    this.admit(x);
  }

  /** An HTTP/1.1 connection's socket closed: it leaves the open set and the sweep. */
  closed(http1: Http1Connection<ClientConnection>): void {
    this.http1.delete(http1);
    this.open.remove(http1.client);
  }

  /** An upgrade request (WebSocket): admitted exactly like any request, then tunnelled. */
  upgrade(http1: Http1Connection<ClientConnection>, head: RequestHead, socket: TLSSocket, firstBytes: Buffer): void {
    const x = new Exchange(http1.client, this.generation, 'http1', http1Request(head, null), this.accessLog, this.exchangeEnded);
    x.reply = new UpgradeReply(x, socket, firstBytes, this);
    endsWith(x, socket);
    // Only the protocols in routing.upgrades are tunnelled (SPEC "To the service"): a service
    // that switches to anything it is asked for (h2c smuggling) would otherwise be handed the
    // client's next bytes unjudged. (An upgrade request with a body the reader refused already.)
    if (!upgradeAllowed(x.request.headers.upgrade ?? '', x.generation.config.routing.upgrades)) x.malformed = 'upgrade';
    this.admit(x);
  }

  /** An HTTP/2 stream: the very same admission as an HTTP/1.1 request, on `:path` and `:authority`. */
  private onStream(stream: ServerHttp2Stream, headers: H2Headers, flags: number): void {
    const connection = this.connections.get(stream.session!);
    if (connection === undefined) {
      stream.close(h2.NGHTTP2_REFUSED_STREAM);
      return;
    }
    connection.openStreams++;
    const grpc = isGrpc(headers['content-type']);
    const x = new Exchange(connection, this.generation, grpc ? 'grpc' : 'h2', h2Request(stream, headers, flags), this.accessLog, this.exchangeEnded);
    x.reply = grpc ? new GrpcReply(x, stream, this) : new H2Reply(x, stream, this);
    // A stream ends in 'error' when nghttp2 resets it (DATA past its content-length, RFC 9113
    // §8.1.1; REFUSED_STREAM when a Rapid Reset flood is cut, CVE-2023-44487) or its session dies:
    // with no listener that error would take the whole process down. 'close' follows and cleans up.
    const watch = this.watches.get(stream.session!)!;
    stream.on('error', watch.streamError);
    watch.delivered(stream.id ?? 0);
    this.metrics.requestsInFlight.n++;
    endsWith(x, stream);
    x.malformed = h2Problem(headers);
    this.admit(x);
  }

  /**
   * A connection refused before a request could be made of it (http1/failure.ts): counted by
   * reason, logged, and, when an answer can still be read by the client, answered in the SPEC
   * format with `connection: close`.
   */
  refused(http1: Http1Connection<ClientConnection>, refusal: Http1Refused, detail: string, answerable: boolean): string | undefined {
    const how = HTTP1_REFUSALS[refusal];
    this.metrics.badRequests.inc({ reason: how.counted });
    if (!answerable) return undefined;
    const requestId = randomUUID();
    const answer = rawDenialResponse(how.denial, requestId);
    const { status } = how.denial;
    this.metrics.requests.cell(UNROUTED, String(status), 'http1').n++;
    const peer = http1.client.peerId;
    this.logRefusal(requestId, peer, UNROUTED, how.denial, detail);
    if (this.accessLog) {
      const record = this.accessLog.begin(requestId, peer, '', 'http1');
      record.status = status;
      record.reason = how.denial.reason;
      record.bytes = answer.length - answer.indexOf('\r\n\r\n') - 4;
      this.accessLog.end(record, performance.now());
    }
    return answer;
  }

  // ---- admission ----------------------------------------------------------------------------

  /**
   * The checks every request passes, in order, whatever its protocol: peer allowed, framing,
   * path normalised, route found, and for a privileged route the decision.
   */
  private admit(x: Exchange): void {
    const { generation, connection } = x;
    if (!connection.allowedBy(generation.allow)) {
      this.refuse(x, denial('peer_not_allowed'), false);
      return;
    }
    if (x.malformed !== undefined) {
      this.metrics.badRequests.inc({ reason: 'malformed' });
      this.refuse(x, denial('bad_request'), false);
      return;
    }
    const target = normaliseTarget(x.request.target, generation.config.routing);
    if (isBadPath(target)) {
      this.metrics.badRequests.inc({ reason: 'bad_path' });
      this.refuse(x, denial('bad_path'), false);
      return;
    }
    if (x.access) x.access.path = target.path;
    const match = generation.routes.match(x.request.method, target.path);
    if (!match) {
      this.refuse(x, denial('no_route'), false);
      return;
    }
    x.match = match;
    if (x.access) x.access.route = match.route.name;
    x.upstreamPath = target.query === '' ? target.path : target.path + target.query;
    if (!match.route.privileged) {
      this.pass(x, undefined);
      return;
    }
    if (match.route.jsonrpc) {
      this.readCalls(x);
      return;
    }
    const verdict = generation.authorizer.authorize({
      peer: connection.peer!,
      route: match.route,
      resource: match.resource,
      method: x.request.method,
      headers: x.request.headers,
      requestId: x.requestId,
      path: x.upstreamPath,
      peerAddress: connection.remoteAddress,
      peerPort: connection.remotePort,
      protocol: x.protocol,
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

  /** SPEC "JSON-RPC and MCP routes": the body first (bounded), then one decision per call. */
  private readCalls(x: Exchange): void {
    const { request, connection } = x;
    const limits = x.generation.config.limits;
    const type = String(request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    // The body is not read after any of these refusals: nothing more on this connection can be.
    const refuseUnread = (denied: Denial): void => {
      if (x.reply instanceof Http1Reply) x.reply.closeAfter();
      this.metrics.badRequests.inc({ reason: 'jsonrpc' });
      this.refuse(x, denied, false);
    };
    if (type !== 'application/json') return refuseUnread(NOT_JSON);
    // Two Content-Type fields: Node keeps the first, the service may read the other; the body we
    // judge must be the body it parses.
    if (fieldCount(request.fields, 'content-type') > 1) return refuseUnread(NOT_JSON_RPC);
    if (request.body === null || request.bodyLength === undefined || request.bodyLength === 0) return refuseUnread(NOT_JSON_RPC);
    if (request.bodyLength !== CHUNKED && request.bodyLength > limits.maxJsonRpcBytes) return refuseUnread(TOO_LARGE);
    if (x.expectsContinue && x.reply instanceof Http1Reply) {
      // The decision needs the body: peer, path and route have passed, so the client is invited now.
      x.reply.invite();
      x.expectsContinue = false;
    }
    readBody(request.body, limits.maxJsonRpcBytes, limits.headersTimeout, (result) => {
      if ('gone' in result) return;
      if ('refused' in result) return refuseUnread(result.refused);
      const match = x.match!;
      const decided = decideCalls(
        result.body,
        x.generation.authorizer,
        match.route,
        match.resource,
        { peer: connection.peer!, method: request.method, headers: request.headers, requestId: x.requestId, path: x.upstreamPath, peerAddress: connection.remoteAddress, peerPort: connection.remotePort, protocol: x.protocol },
        x.requestId,
      );
      const settle = (outcome: CallsOutcome): void => {
        for (const call of outcome.calls) this.metrics.rpcDecisions.inc(match.route.name, this.toolLabel(match.route.name, call.name), call.allow ? 'allow' : 'deny');
        if (outcome.allow) {
          // Byte for byte what the client sent (SPEC): the buffer, never a re-serialisation.
          x.bufferedBody = result.body;
          this.pass(x, outcome.verdict);
          return;
        }
        if (!outcome.audited) this.metrics.badRequests.inc({ reason: 'jsonrpc' });
        this.refuse(x, outcome.denial, outcome.audited, outcome.body === '' ? undefined : outcome.body);
      };
      if (decided instanceof Promise) {
        decided.then(settle, (error: unknown) => {
          this.logger.error({ err: error, request_id: x.requestId }, 'authorizer failed');
          this.refuse(x, denial('pdp_unavailable'), false);
        });
      } else {
        settle(decided);
      }
    });
  }

  /**
   * The `tool` label of a JSON-RPC call: names come from clients, so each route keeps its first
   * 64 and counts the rest as "other" (SPEC "Metrics": labels stay bounded).
   */
  private toolLabel(route: string, name: string): string {
    // A tool name, not a resource URI or anything else a client may put there.
    if (!TOOL_NAME.test(name)) return 'other';
    let names = this.toolNames.get(route);
    if (names === undefined) this.toolNames.set(route, (names = new Set()));
    if (names.has(name)) return name;
    if (names.size >= MAX_TOOL_LABELS) return 'other';
    names.add(name);
    return name;
  }

  private afterVerdict(x: Exchange, verdict: Verdict): void {
    if (verdict.allow) this.pass(x, verdict);
    // The decision path has written this refusal to the audit log.
    else this.refuse(x, verdict.denial, true);
  }

  /**
   * SPEC "Responses": every refusal can be found by its request id. Privileged decisions are in
   * the audit log; every other refusal is logged here, at info.
   */
  private logRefusal(requestId: string, peer: string, route: string, denied: Denial, detail?: string): void {
    this.logger.info({ request_id: requestId, peer, route, status: denied.status, reason: denied.reason, ...(detail ? { detail } : {}) }, 'request refused');
  }

  /** Answers the exchange with a SPEC denial; `audited` when the decision path logged it already. */
  private refuse(x: Exchange, denied: Denial, audited: boolean, body?: string): void {
    if (x.access) x.access.reason = denied.reason;
    if (!audited) this.logRefusal(x.requestId, x.peerId, x.routeName, denied);
    // A client that was not invited to send its body may or may not send it: after the refusal
    // nothing on this connection can be read as the next request.
    if (x.expectsContinue && x.reply instanceof Http1Reply) x.reply.closeAfter();
    x.reply.deny(denied, x.requestId, body);
  }

  // ---- forwarding ---------------------------------------------------------------------------

  private pass(x: Exchange, verdict: Extract<Verdict, { allow: true }> | undefined): void {
    const grantId = verdict?.grantId;
    if (verdict !== undefined) this.bind(x, verdict);
    const reply = x.reply;
    if (reply instanceof UpgradeReply) {
      this.tunnel(x, reply, grantId);
      return;
    }
    const relay = reply as RelayReply;
    const upstream = x.generation.upstream;
    if (x.protocol === 'grpc' && upstream.protocol !== 'h2c') {
      // SPEC: gRPC needs an h2c upstream; over HTTP/1.1 its trailers, and so its status, would be lost.
      this.refuse(x, denial('upstream_unavailable'), false);
      return;
    }
    if (reply instanceof Http1Reply) {
      if (x.expectsContinue) reply.invite();
    }
    x.forwardedAt = performance.now();
    const { request } = x;
    const buffered = x.bufferedBody;
    const body = buffered === undefined ? request.body : buffered;
    relay.relayFrom(upstream.forward(request.method, x.upstreamPath, this.serviceHeaders(x, grantId), body, buffered === undefined ? request.bodyLength : buffered.length, relay, x.protocol === 'grpc'));
  }

  /** An exchange admitted on a grant or posture assertion ends when they do (SPEC "Streams"). */
  private bind(x: Exchange, verdict: Extract<Verdict, { allow: true }>): void {
    const grantExp = verdict.grantExpMs ?? Infinity;
    const postureDeadline = verdict.postureDeadlineMs ?? Infinity;
    if (grantExp === Infinity && postureDeadline === Infinity) return;
    x.jti = verdict.grantId;
    x.onPosture = postureDeadline !== Infinity;
    x.deadlineMs = Math.min(grantExp, postureDeadline);
    x.deadlineReason = grantExp <= postureDeadline ? 'grant_expired' : 'posture_stale';
    x.tracked = true;
    this.open.add(x);
  }

  private tunnel(x: Exchange, reply: UpgradeReply<Exchange>, grantId: string | undefined): void {
    const to = reply.socket;
    // The client left while the decision was being made: nothing to open, nothing to track.
    if (to.destroyed) return;
    // The pool writes the upgrade head with every rule of a forwarded request's, plus the upgrade pair.
    x.generation.upstream.upgrade(
      to,
      x.request.method,
      x.upstreamPath,
      this.serviceHeaders(x, grantId),
      String(x.request.headers.upgrade ?? ''),
      reply.firstBytes,
      (status) => {
        reply.started = true;
        this.answered(x, status);
        // Switched: an open tunnel until the client's side closes (a relayed refusal is none).
        if (status === '101' && !to.closed) {
          this.metrics.openTunnels.n++;
          to.on('close', this.tunnelClosed);
        }
      },
      (reason) => this.refuse(x, denial(reason), false),
    );
  }

  /** The request headers for the service: the inbound ones filtered, plus SPEC's identity headers. */
  private serviceHeaders(x: Exchange, grantId: string | undefined): string[] {
    const { request, connection } = x;
    const headers = x.generation.headerFilter.filter(request.fields, request.connectionHeader);
    headers.push(
      'x-forwarded-client-cert', connection.xfcc(this.identity.id.uri),
      'x-request-id', x.requestId,
      'x-forwarded-for', connection.remoteAddress,
      'x-forwarded-proto', 'https',
    );
    if (grantId !== undefined) headers.push('x-jit-grant-id', grantId);
    return headers;
  }

  // ---- ReplyEvents: what the replies report ---------------------------------------------------

  answered(x: Exchange, code: string): void {
    if (x.forwardedAt !== 0) {
      this.metrics.upstreamDuration.observe(this.upstreamCell, (performance.now() - x.forwardedAt) / 1000);
      x.forwardedAt = 0;
    }
    this.metrics.requests.cell(x.routeName, code, x.protocol).n++;
    if (x.access) x.access.status = Number(code);
  }

  failed(x: Exchange, error: UpstreamError): void {
    const denied = denial(error.reason);
    // Logged here with the cause, so the refusal is not logged twice.
    this.logger.warn({ request_id: x.requestId, peer: x.peerId, route: x.routeName, status: denied.status, reason: error.reason, code: error.code, detail: error.message }, 'upstream request failed');
    this.refuse(x, denied, true);
  }

  /** The exchange ended, whichever way: it leaves the gauges, the open set and the access log. */
  private ended(x: Exchange): void {
    if (!(x.reply instanceof UpgradeReply)) this.metrics.requestsInFlight.n--;
    if (x.protocol !== 'http1') x.connection.openStreams--;
    if (x.tracked) {
      x.tracked = false;
      this.open.remove(x);
    }
    if (x.access) {
      x.access.bytes = x.reply.bytesSent;
      this.accessLog!.end(x.access, x.startedMs);
    }
  }

  /** Each cut is counted, audited with its request id and logged (SPEC "Streams"). */
  private onCut(bound: Bound, reason: CutReason): void {
    if (!(bound instanceof Exchange)) {
      this.logger.info({ peer: bound.peerId, reason }, 'connection closed: the peer SVID expired');
      return;
    }
    if (reason === 'grant_expired') this.metrics.grantExpired.inc();
    this.metrics.streamsCut.inc(reason);
    this.audit.write({ time: auditTime(), event: 'stream_cut', request_id: bound.requestId, reason, peer: bound.peerId, route: bound.routeName, grant_jti: bound.jti, protocol: bound.protocol });
    this.logger.info({ request_id: bound.requestId, peer: bound.peerId, route: bound.routeName, reason, protocol: bound.protocol }, 'exchange cut');
  }

  // ---- shutdown -----------------------------------------------------------------------------

  /**
   * Graceful stop: no new connections; requests in flight finish (HTTP/1.1 responses say
   * `Connection: close`, HTTP/2 sessions get GOAWAY); idle keep-alive connections close now;
   * whatever is still open at the deadline is cut. Resolves when every connection is gone.
   */
  close(deadlineMs = 10_000): Promise<void> {
    this.draining = true;
    for (const session of this.sessions) session.close();
    return new Promise((resolve) => {
      const deadline = setTimeout(() => {
        this.http1.destroyAll();
        for (const session of this.sessions) session.destroy();
      }, deadlineMs);
      // A keep-alive connection whose last answer ends during the drain turns idle: close it then.
      const sweep = setInterval(() => this.http1.closeIdle(), 50);
      this.server.close(() => {
        clearTimeout(deadline);
        clearInterval(sweep);
        resolve();
      });
      this.http1.closeIdle();
    });
  }
}

/** How many times a field appears in a [name, value, …] list (names compared case-insensitively). */
function fieldCount(fields: readonly string[], lowerName: string): number {
  let n = 0;
  for (let i = 0; i < fields.length; i += 2) if (fields[i]!.length === lowerName.length && fields[i]!.toLowerCase() === lowerName) n++;
  return n;
}

/** What an HTTP/1.1 request asks, for the exchange. */
function http1Request(head: RequestHead, body: RequestBody | null): RequestInit {
  // The framing comes from what our reader read (it refused CL with TE, and bad lengths).
  const headers = headersObject(head.fields);
  const length = head.framing === 'chunked' ? CHUNKED : head.framing === 'length' ? head.contentLength : undefined;
  return { method: head.method, target: head.target, headers, fields: head.fields, connectionHeader: headers.connection, body, bodyLength: length };
}

/** What an HTTP/2 request asks: pseudo-headers become the method, target and Host (RFC 9113 8.3.1). */
function h2Request(stream: ServerHttp2Stream, headers: H2Headers, flags: number): RequestInit {
  const fields: string[] = [];
  let host = false;
  for (const name in headers) {
    if (name.charCodeAt(0) === 0x3a) continue; // a pseudo-header
    const value = headers[name];
    if (value === undefined) continue;
    if (name === 'host') host = true;
    // Node joins repeated cookie fields with "; " (RFC 9113 8.2.3), as HTTP/1.1 needs them.
    if (Array.isArray(value)) for (const v of value) fields.push(name, v);
    else fields.push(name, value);
  }
  const authority = headers[':authority'];
  if (!host && typeof authority === 'string') fields.push('host', authority);
  const ended = (flags & H2_FLAGS_END_STREAM) !== 0;
  const length = headers['content-length'];
  return {
    method: String(headers[':method'] ?? ''),
    target: String(headers[':path'] ?? ''),
    headers,
    fields,
    connectionHeader: undefined,
    body: ended ? null : stream,
    bodyLength: ended ? undefined : length !== undefined ? Number(length) : CHUNKED,
  };
}

/**
 * What RFC 9113 section 8 leaves to us after nghttp2's own checks (which refuse uppercase names,
 * connection-specific fields, a `te` other than "trailers", unknown or repeated pseudo-headers):
 * an ordinary request over TLS with a target and an authority. CONNECT tunnels nothing here.
 */
function h2Problem(headers: H2Headers): string | undefined {
  const method = headers[':method'];
  if (method === 'CONNECT' || headers[':protocol'] !== undefined) return 'connect';
  if (headers[':scheme'] !== 'https') return 'scheme';
  const authority = headers[':authority'];
  const host = headers.host;
  if (authority === undefined && host === undefined) return 'authority';
  if (authority !== undefined && host !== undefined && authority !== host) return 'authority';
  const length = headers['content-length'];
  if (length !== undefined && !/^\d{1,15}$/.test(String(length))) return 'content-length';
  return undefined;
}
