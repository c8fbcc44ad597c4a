// Keeps a remote PDP from hurting the proxy: a bound on calls in flight (excess fails fast
// rather than queueing), and a circuit breaker that stops calling a PDP that keeps failing and
// lets one probe through after a pause. Failing fast is still failing closed: 503
// pdp_unavailable, never an allow.
// Every change of the circuit is logged (opening at warn, probing and closing at info), so an
// SRE paged for 503s finds when and why in the sidecar's log.
import { pdpError, type Pdp, type PdpInput, type PdpResult } from './pdp.ts';
import type { Logger } from '../telemetry/logger.ts';

export interface GuardOptions {
  readonly maxInFlight: number;
  /** Consecutive failures that open the circuit. */
  readonly failureThreshold: number;
  /** How long the circuit stays open before one probe; doubles per failed probe, up to maxOpenMs. */
  readonly openMs: number;
  readonly maxOpenMs: number;
}

export const DEFAULT_GUARD: GuardOptions = { maxInFlight: 256, failureThreshold: 5, openMs: 1_000, maxOpenMs: 30_000 };

type State = 'closed' | 'open' | 'half-open';

export class GuardedPdp implements Pdp {
  readonly kind: string;
  private readonly inner: Pdp;
  private readonly options: GuardOptions;
  private inFlight = 0;
  private failures = 0;
  private state: State = 'closed';
  private openUntil = 0;
  private currentOpenMs: number;
  private readonly logger: Logger | undefined;
  /** Whether the PDP has answered since start (readiness). */
  answered = false;

  constructor(inner: Pdp, options: GuardOptions = DEFAULT_GUARD, logger?: Logger) {
    this.inner = inner;
    this.kind = inner.kind;
    this.options = options;
    this.currentOpenMs = options.openMs;
    this.logger = logger;
  }

  /** Healthy: has answered and the circuit is not open. */
  get healthy(): boolean {
    return this.answered && this.state !== 'open';
  }

  get circuit(): State {
    return this.state;
  }

  async evaluate(input: PdpInput): Promise<PdpResult> {
    if (this.state === 'open') {
      if (Date.now() < this.openUntil) return pdpError('circuit_open', 'circuit open: the PDP failed repeatedly');
      this.state = 'half-open'; // this call is the probe
      this.logger?.info({ pdp: this.kind, circuit: 'half-open' }, 'PDP circuit half-open: one probe call goes through');
    } else if (this.state === 'half-open') {
      return pdpError('circuit_open', 'circuit half-open: a probe is in flight');
    }
    if (this.inFlight >= this.options.maxInFlight) return pdpError('overloaded', `more than ${this.options.maxInFlight} PDP calls in flight`);
    this.inFlight++;
    let result: PdpResult;
    try {
      result = await this.inner.evaluate(input);
    } catch (error) {
      // A rejection is a bug in the client (its failures are values): it still counts against
      // the circuit, and goes on to evaluateWithin, the one place that reports it as `error`.
      this.onFailure();
      throw error;
    } finally {
      this.inFlight--;
    }
    if (result.kind === 'error') this.onFailure();
    else this.onSuccess();
    return result;
  }

  private onSuccess(): void {
    this.answered = true;
    this.failures = 0;
    if (this.state !== 'closed') this.logger?.info({ pdp: this.kind, circuit: 'closed' }, 'PDP circuit closed: the PDP answers again');
    this.state = 'closed';
    this.currentOpenMs = this.options.openMs;
  }

  private onFailure(): void {
    this.failures++;
    if (this.state === 'half-open') {
      this.currentOpenMs = Math.min(this.currentOpenMs * 2, this.options.maxOpenMs);
      this.open();
      this.logger?.warn({ pdp: this.kind, circuit: 'open', open_ms: this.currentOpenMs }, 'PDP circuit re-opened: the probe failed; calls fail fast (503 pdp_unavailable) until the next probe');
    } else if (this.failures >= this.options.failureThreshold) {
      const wasOpen = this.state === 'open'; // a call still in flight when it opened
      this.open();
      if (!wasOpen) this.logger?.warn({ pdp: this.kind, circuit: 'open', failures: this.failures, open_ms: this.currentOpenMs }, 'PDP circuit opened: consecutive failures; calls fail fast (503 pdp_unavailable) until a probe succeeds');
    }
  }

  private open(): void {
    this.state = 'open';
    this.openUntil = Date.now() + this.currentOpenMs;
  }

  close(): Promise<void> {
    return this.inner.close?.() ?? Promise.resolve();
  }
}
