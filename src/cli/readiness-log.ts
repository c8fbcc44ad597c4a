// Readiness changes in the log (README "Operating"): an SRE paged by a failing probe finds why
// in the log, but a reason whose figures move by themselves ("not read for 2.1s", "4.1s", ...)
// is still the same state. So a line is written when ready/not-ready flips or the reason's kind
// changes (its text with every number taken out), and while not ready one reminder at most every
// `remindMs` with the current reason, so a long outage is not one line lost far up the log.
import type { Logger } from '../telemetry/logger.ts';

/** The reason with its figures removed: what the readiness state is, not how long it has been. */
export function readinessKind(reason: string | undefined): string | undefined {
  return reason?.replace(/\d+(?:\.\d+)?/g, '#');
}

export function readinessLog(logger: Logger, remindMs = 60_000, now: () => number = Date.now): (reason: string | undefined) => void {
  let lastKind: string | undefined | null = null;
  let since = 0;
  let lastLine = 0;
  return (reason) => {
    const kind = readinessKind(reason);
    const at = now();
    if (kind !== lastKind) {
      if (reason === undefined) logger.info({ ready: true }, 'readiness changed: ready');
      else logger.warn({ ready: false, reason }, `readiness changed: not ready (${reason})`);
      // A new kind of not-ready keeps the time the sidecar stopped being ready.
      if (lastKind === undefined || lastKind === null || reason === undefined) since = at;
      lastKind = kind;
      lastLine = at;
    } else if (reason !== undefined && at - lastLine >= remindMs) {
      logger.warn({ ready: false, reason, not_ready_ms: at - since }, `still not ready (${reason})`);
      lastLine = at;
    }
  };
}
