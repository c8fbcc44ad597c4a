// Failure lines that stay readable during an outage: at most one line per kind per interval,
// each saying how many of that kind were left out since the previous one (`suppressed`). A dead
// PDP at 10,000 requests a second gives one line every interval, not 10,000.
import type { Logger } from '../telemetry/logger.ts';

interface KindState {
  last: number;
  suppressed: number;
}

export class RateLimitedLog {
  private readonly logger: Logger;
  private readonly intervalMs: number;
  /** Kinds come from fixed unions (PDP outcomes), so this map stays small. */
  private readonly kinds = new Map<string, KindState>();

  constructor(logger: Logger, intervalMs: number) {
    this.logger = logger;
    this.intervalMs = intervalMs;
  }

  warn(kind: string, fields: Record<string, unknown>, message: string, now = Date.now()): void {
    const state = this.kinds.get(kind);
    if (state !== undefined && now - state.last < this.intervalMs) {
      state.suppressed++;
      return;
    }
    this.logger.warn({ ...fields, suppressed: state?.suppressed ?? 0 }, message);
    this.kinds.set(kind, { last: now, suppressed: 0 });
  }
}
