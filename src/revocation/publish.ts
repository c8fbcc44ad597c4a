// Where a revocation is published (SPEC "Fleet-wide revocation"): the one seam every source uses
// (`POST /admin/revoke`, and later the Shared Signals receiver). With revocation.source: redis
// the entry is added to the stream (XADD: every sidecar applies it) and applied here at once;
// with local, it is applied here only. Either way this sidecar refuses it from the next request.
// If the bus cannot take it, it is still applied here (fail closed where we can) and the answer
// says the fleet was not told.
import type { RevocationEntry, RevocationOrigin } from './entry.ts';
import { streamIdTime } from './entry.ts';
import type { ApplyRevocation } from './applier.ts';
import type { RedisRevocationBus } from './redis-bus.ts';

export type Published =
  | { readonly ok: true; readonly id: string; readonly fleet: boolean; readonly purged: number; readonly cut: number }
  | { readonly ok: false; readonly id: string; readonly problem: string; readonly purged: number; readonly cut: number };

export type PublishRevocation = (entry: RevocationEntry, origin: RevocationOrigin) => Promise<Published>;

let localSeq = 0;
/** A stream-shaped id for an entry that never reached a stream (source local, or the bus down). */
function localId(now: number): string {
  return `${now}-${localSeq++}`;
}

export function createPublisher(apply: ApplyRevocation, bus: RedisRevocationBus | undefined): PublishRevocation {
  return async (entry, origin) => {
    if (!bus) {
      const now = Date.now();
      const id = localId(now);
      const applied = apply(entry, origin, { id, atMs: now, live: false });
      return { ok: true, id, fleet: false, purged: applied.purged, cut: applied.cut };
    }
    let id: string;
    try {
      id = await bus.publish(entry);
    } catch (error) {
      const now = Date.now();
      const local = localId(now);
      const applied = apply(entry, origin, { id: local, atMs: now, live: false });
      return { ok: false, id: local, problem: `revocation bus unreachable: ${(error as Error).message}`, purged: applied.purged, cut: applied.cut };
    }
    const applied = apply(entry, origin, { id, atMs: streamIdTime(id) ?? Date.now(), live: true });
    return { ok: true, id, fleet: true, purged: applied.purged, cut: applied.cut };
  };
}
