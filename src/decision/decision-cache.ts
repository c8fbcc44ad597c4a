// The decision cache (SPEC "The decision, per request", step 4). Keys join the config generation,
// route, peer, action, resource, grant jti (with its signature), posture digest and intent; entries carry their own
// TTL; nothing but a real PDP answer is ever stored.
import { LRUCache } from 'lru-cache';
import type { DenyReason } from './denial.ts';
import type { Metrics } from '../telemetry/metrics.ts';

export interface CachedDecision {
  readonly allow: boolean;
  readonly reason: DenyReason | undefined;
  readonly detail: string | undefined;
  /** Who the key names, for purges on revocation. */
  readonly peer: string;
  readonly jti: string;
}

const SEPARATOR = '\n'; // none of the parts can contain a newline

export function decisionKey(generation: number, route: string, peer: string, action: string, resource: string, grant: string, postureDigest: string, intent: string): string {
  return generation + SEPARATOR + route + SEPARATOR + peer + SEPARATOR + action + SEPARATOR + resource + SEPARATOR + grant + SEPARATOR + postureDigest + SEPARATOR + intent;
}

export class DecisionCache {
  private readonly lru: LRUCache<string, CachedDecision> | undefined;
  private hits = 0;
  private misses = 0;
  private readonly metrics: Metrics;

  constructor(maxEntries: number, metrics: Metrics) {
    this.metrics = metrics;
    this.lru =
      maxEntries > 0
        ? new LRUCache<string, CachedDecision>({
            max: maxEntries,
            ttl: 1, // every set passes its own TTL
            ttlAutopurge: false,
            allowStale: false,
            updateAgeOnGet: false,
            dispose: (_value, _key, reason) => {
              if (reason === 'evict') metrics.cacheEvictions.inc();
            },
          })
        : undefined;
  }

  get enabled(): boolean {
    return this.lru !== undefined;
  }

  get(key: string): CachedDecision | undefined {
    const hit = this.lru?.get(key);
    if (hit) {
      this.hits++;
      this.metrics.cacheHits.inc();
    } else {
      this.misses++;
      this.metrics.cacheMisses.inc();
    }
    return hit;
  }

  set(key: string, decision: CachedDecision, ttlMs: number): void {
    if (this.lru && ttlMs >= 1) this.lru.set(key, decision, { ttl: Math.floor(ttlMs) });
  }

  /** Drops every entry decided for this grant or this peer; returns how many. */
  purge(match: { jti?: string; peer?: string }): number {
    if (!this.lru) return 0;
    const doomed: string[] = [];
    for (const [key, value] of this.lru.entries()) {
      if ((match.jti !== undefined && value.jti === match.jti) || (match.peer !== undefined && value.peer === match.peer)) doomed.push(key);
    }
    for (const key of doomed) this.lru.delete(key);
    return doomed.length;
  }

  flush(): number {
    const size = this.lru?.size ?? 0;
    this.lru?.clear();
    return size;
  }

  get size(): number {
    return this.lru?.size ?? 0;
  }

  stats(): { entries: number; hits: number; misses: number; hitRatio: number } {
    const total = this.hits + this.misses;
    return { entries: this.size, hits: this.hits, misses: this.misses, hitRatio: total === 0 ? 0 : this.hits / total };
  }
}
