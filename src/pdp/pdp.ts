// The one seam between the decision path and whatever decides (SPEC STYLE 5): every PDP kind
// takes the same facts and answers allow or deny, with an optional TTL cap. Errors are thrown
// (or rejected) and become 503 pdp_unavailable upstream of here, never an allow, never cached.
import type { DenyReason } from '../decision/denial.ts';
import type { Sensitivity } from '../routing/route-table.ts';
import type { Grant } from '../tokens/grant.ts';
import type { PostureAssertion } from '../tokens/posture.ts';

export interface PdpInput {
  readonly subject: string;
  readonly posture: PostureAssertion | undefined;
  readonly action: string;
  readonly method: string;
  readonly resource: string;
  readonly route: string;
  readonly sensitivity: Sensitivity;
  readonly grant: Grant | undefined;
  readonly intent: string | undefined;
  readonly requestId: string;
  readonly nowMs: number;
  /** The HTTP request as the proxy saw it, for PDPs that look at it (ext-authz). */
  readonly http?: PdpHttpFacts;
}

export interface PdpHttpFacts {
  /** Normalised path plus the original query. */
  readonly path: string;
  readonly host: string;
  /** Request headers; token headers are removed by whoever sends them on. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly peerAddress: string;
  readonly peerPort: number;
}

/** A PDP failure that is not a plain error: the label for portcullis_pdp_requests_total{outcome}. */
export class PdpUnavailable extends Error {
  override readonly name = 'PdpUnavailable';
  readonly outcome: string;
  constructor(outcome: string, message: string) {
    super(message);
    this.outcome = outcome;
  }
}

export interface PdpResult {
  readonly allow: boolean;
  /** The SPEC reason for a deny; remote PDPs always give policy_denied. */
  readonly reason: DenyReason | undefined;
  /** The PDP's own words for the audit log (a rule id, an OPA reason); never shown to clients. */
  readonly detail: string | undefined;
  /** Caps the cache TTL; 0 means do not cache. */
  readonly ttlMs: number | undefined;
}

export interface Pdp {
  readonly kind: string;
  evaluate(input: PdpInput): PdpResult | Promise<PdpResult>;
  close?(): Promise<void>;
}
