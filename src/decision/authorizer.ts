// The seam between the front door and the decision path: the proxy asks, per privileged
// request, whether to forward. A deny is a value (a Denial), never an exception.
import type { IncomingHttpHeaders } from 'node:http';
import type { PeerIdentity } from '../identity/peer-verifier.ts';
import type { Route } from '../routing/route-table.ts';
import type { Denial } from './denial.ts';

export interface RequestFacts {
  readonly peer: PeerIdentity;
  readonly route: Route;
  readonly resource: string;
  readonly method: string;
  readonly headers: IncomingHttpHeaders;
  readonly requestId: string;
  /** The normalised path plus the original query, and the peer's address: for PDPs that look at
   * the request (ext-authz), read only when a PDP is asked. */
  readonly path: string;
  readonly peerAddress: string;
  readonly peerPort: number;
}

/**
 * An allow names the grounds it rests on, so the proxy can end the exchange when they go (SPEC
 * "Streams"): the grant (its jti and exp), if any, and the posture assertion's deadline (its exp
 * or the end of posture.maxAge), if one was used.
 */
export type Verdict =
  | {
      readonly allow: true;
      readonly grantId: string | undefined;
      readonly grantExpMs: number | undefined;
      readonly postureDeadlineMs: number | undefined;
    }
  | { readonly allow: false; readonly denial: Denial };

export interface Authorizer {
  authorize(facts: RequestFacts): Verdict | Promise<Verdict>;
}
