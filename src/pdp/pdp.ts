// The one seam between the decision path and whatever decides (SPEC STYLE 5): every PDP kind
// takes the same facts and answers allow, deny or error (Envoy's CheckStatus OK/Denied/Error).
// A failure is a value (STYLE "A failure is a value"): an error becomes 503 pdp_unavailable in
// the decision path, never an allow, never cached; nothing here throws for an expected failure.
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

/**
 * Why a PDP gave no answer: the `portcullis_pdp_requests_total{outcome}` label. `error` is a
 * failed call (connect, reset, gRPC status, HTTP status other than 200) or a bug of our own.
 */
export type PdpFailure = 'timeout' | 'error' | 'bad_answer' | 'circuit_open' | 'overloaded';

export interface PdpAllow {
  readonly kind: 'allow';
  /** Caps the cache TTL; 0 means do not cache. */
  readonly ttlMs: number | undefined;
  /** The PDP's own words for the audit log (a rule id, an OPA reason); never shown to clients. */
  readonly detail: string | undefined;
}

export interface PdpDeny {
  readonly kind: 'deny';
  /** The SPEC reason; remote PDPs always give policy_denied. */
  readonly reason: DenyReason;
  readonly ttlMs: number | undefined;
  readonly detail: string | undefined;
}

export interface PdpError {
  readonly kind: 'error';
  readonly outcome: PdpFailure;
  /** What went wrong, for the log and the audit line; never shown to clients. */
  readonly detail: string;
}

export type PdpResult = PdpAllow | PdpDeny | PdpError;

export function pdpError(outcome: PdpFailure, detail: string): PdpError {
  return { kind: 'error', outcome, detail };
}

export interface Pdp {
  readonly kind: string;
  /** Resolves, never rejects, for every expected failure; a throw or rejection is a bug. */
  evaluate(input: PdpInput): PdpResult | Promise<PdpResult>;
  close?(): Promise<void>;
}
