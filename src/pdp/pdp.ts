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
