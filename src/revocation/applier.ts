// Applying one revocation on this sidecar (SPEC "Fleet-wide revocation"): whatever its origin
// (the admin API, the fleet bus, a Shared Signals event), an entry does the same four things at
// once: it is held in the revocation store (refused from the next request on), the decisions it
// names are purged from the cache, the open exchanges it names are cut, and it is audited with
// its origin and counted. The decision path and the proxy are reached through `RevocationTargets`
// (wired in src/cli/instance.ts), so this layer imports neither.
import type { RevocationEntry, RevocationOrigin } from './entry.ts';
import { auditTime, type AuditLog } from '../telemetry/audit.ts';
import type { Logger } from '../telemetry/logger.ts';

/** What an entry acts on: the current decision path, the proxy's open exchanges, the store. */
export interface RevocationTargets {
  /** Holds the jti (kept at least until `expMs`, if later) and purges its decisions; returns how many. */
  revokeGrant(jti: string, atMs: number, expMs: number): number;
  revokeSubject(sub: string, atMs: number): number;
  revokePosture(sub: string, atMs: number): number;
  /** Cuts the open exchanges named; returns how many. */
  cutOpen(revoked: { jti?: string; sub?: string; postureSub?: string }): number;
  /** Whether an entry of this time (and exp) is still to be held now. */
  inForce(atMs: number, expMs: number, now: number): boolean;
}

export interface ApplierMetrics {
  readonly revocations: { inc(): void };
  /** portcullis_revocation_lag_seconds: entry id time → applied here. */
  readonly revocationLag: { observe(seconds: number): void };
}

/** Where an entry stands: its id (a stream id, or a local one) and the time it was revoked. */
export interface EntryMeta {
  readonly id: string;
  readonly atMs: number;
  /** Whether its lag means anything (not for the backlog read at start). */
  readonly live: boolean;
}

export interface Applied {
  readonly applied: boolean;
  readonly purged: number;
  readonly cut: number;
}

export type ApplyRevocation = (entry: RevocationEntry, origin: RevocationOrigin, meta: EntryMeta) => Applied;

const NOT_IN_FORCE: Applied = Object.freeze({ applied: false, purged: 0, cut: 0 });

export function createApplier(o: { targets: RevocationTargets; audit: AuditLog; metrics: ApplierMetrics; logger: Logger }): ApplyRevocation {
  return (entry, origin, meta) => {
    const now = Date.now();
    // An old entry read from the stream may name nothing that can still be valid: nothing to hold.
    if (!o.targets.inForce(meta.atMs, entry.expMs ?? 0, now)) return NOT_IN_FORCE;
    let purged = 0;
    if (entry.jti !== undefined) purged += o.targets.revokeGrant(entry.jti, meta.atMs, entry.expMs ?? 0);
    if (entry.sub !== undefined) purged += o.targets.revokeSubject(entry.sub, meta.atMs);
    if (entry.postureSub !== undefined) purged += o.targets.revokePosture(entry.postureSub, meta.atMs);
    const cut = o.targets.cutOpen({
      ...(entry.jti !== undefined ? { jti: entry.jti } : {}),
      ...(entry.sub !== undefined ? { sub: entry.sub } : {}),
      ...(entry.postureSub !== undefined ? { postureSub: entry.postureSub } : {}),
    });
    const applied = Date.now();
    o.metrics.revocations.inc();
    if (meta.live) o.metrics.revocationLag.observe(Math.max(0, applied - meta.atMs) / 1000);
    o.audit.write({
      time: auditTime(),
      event: 'revocation',
      entry_id: meta.id,
      jti: entry.jti,
      sub: entry.sub,
      posture_sub: entry.postureSub,
      reason: entry.reason,
      by: entry.by,
      origin,
      purged_decisions: purged,
      cut_exchanges: cut,
    });
    // The backlog read at start (up to `retain` of entries) gets one summary line from the bus, not one each.
    if (meta.live || origin !== 'bus') o.logger.info({ entry_id: meta.id, origin, jti: entry.jti, sub: entry.sub, posture_sub: entry.postureSub, purged, cut_exchanges: cut }, 'revocation applied');
    return { applied: true, purged, cut };
  };
}
