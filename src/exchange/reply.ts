// Where one exchange's answer goes, in its client's protocol (STYLE.md: HTTP/1.1 responses,
// upgrades, HTTP/2 streams and gRPC calls are kinds of one Reply, not instanceof branches). A
// relaying Reply is also the sink the forwarding clients feed the service's answer into
// (UpstreamExchange), so backpressure, failures and cut-offs are handled once per protocol.
import type { Denial } from '../decision/denial.ts';
import type { UpstreamError, UpstreamExchange } from '../forward/upstream-pool.ts';

/** A reply the forwarding clients relay a whole answer into (every kind but an upgrade, which is spliced). */
export type RelayReply = Reply & UpstreamExchange & { relayFrom(call: UpstreamHandle): void };
import type { CutReason } from './open-exchanges.ts';

export type Protocol = 'http1' | 'h2' | 'grpc';

/** The forwarding call relaying into a reply: aborted when the client goes or the exchange is cut (forward/'s own type). */
export type { ForwardCall as UpstreamHandle } from '../forward/upstream.ts';
import type { ForwardCall as UpstreamHandle } from '../forward/upstream.ts';

/** What a reply reports back to the proxy (one shared object, no closure per request). */
export interface ReplyEvents<X> {
  /** The answer's status is known (the service's, or ours for a refusal): counted once per exchange. */
  answered(x: X, code: string): void;
  /** The service failed before anything was sent to the client: the proxy answers 502/504. */
  failed(x: X, error: UpstreamError): void;
}

export interface Reply {
  readonly kind: 'http1' | 'upgrade' | 'h2' | 'grpc';
  /** The call relaying the service's answer into this reply, once forwarding has begun. */
  call: UpstreamHandle | undefined;
  /** Body bytes sent to the client (access log). */
  readonly bytesSent: number;
  /** Whether anything of the answer went to the client already. */
  readonly started: boolean;
  /** Answers with a refusal in this protocol's format (`body`: a JSON body in place of the SPEC one, where the protocol has bodies). */
  deny(denial: Denial, requestId: string, body?: string): void;
  /**
   * The exchange's grounds ended (SPEC "Streams"): whatever is open of it ends now in both
   * directions, and the service's side is aborted.
   */
  cut(reason: CutReason, requestId: string): void;
}

/** The SPEC denial reason a cut answers with, when nothing was sent yet. */
export function cutDenialReason(reason: CutReason): 'grant_expired' | 'grant_revoked' | 'posture_stale' | 'posture_revoked' | 'peer_not_allowed' {
  return reason === 'svid_expired' ? 'peer_not_allowed' : reason;
}
