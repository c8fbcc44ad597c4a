// The decision cache (SPEC "The decision, per request", step 4). Keys join the config generation,
// route, peer, action, resource, the grant and posture assertion (each by its verified-token ref)
// and intent; entries carry their own
// TTL; nothing but a real PDP answer is ever stored.
import { LRUCache } from 'lru-cache';
import type { DenyReason } from './denial.ts';
import type { CounterCell, Metrics } from '../telemetry/metrics.ts';

export interface CachedDecision {
  readonly allow: boolean;
  readonly reason: DenyReason | undefined;
  readonly detail: string | undefined;
  /** Who the key names, for purges on revocation. */
  readonly peer: string;
  readonly jti: string;
  /** The route it was decided for: GET /admin/cache counts entries per route. */
  readonly route: string;
}

/** SPEC step 4: what can set an allow's lifetime, the smallest of them winning. */
export const TTL_BOUNDS = ['pdp', 'allow_ttl', 'route_ttl', 'grant_exp', 'posture'] as const;
export type TtlBound = (typeof TTL_BOUNDS)[number];

/** One route's cache counters (SPEC "Admin listener", GET /admin/cache per route). */
export interface RouteCacheStats {
  hits: number;
  misses: number;
  /** Allows stored, by the bound that set their lifetime. */
  readonly bounds: Record<TtlBound, number>;
}

const SEPARATOR = '\n'; // none of the parts can contain a newline

/**
 * A decision's key: its scope's short ref (DecisionScopes: config generation, route, action and
 * peer), the resource, the grant and posture assertion (each by its verified-token ref) and the
 * intent. Short on purpose: every request builds its key afresh (the resource comes from its
 * path), and the cache lookup hashes it whole, so each character costs on every hit; with the
 * peer's SPIFFE ID and the route spelled out the key was 4–5× as long and hashing it was about
 * 0.2 µs of a 1.1 µs cache hit.
 */
export function decisionKey(scope: string, resource: string, grant: string, postureDigest: string, intent: string): string {
  return scope + SEPARATOR + resource + SEPARATOR + grant + SEPARATOR + postureDigest + SEPARATOR + intent;
}

/** Distinct scopes remembered per generation before the memo starts over (bounded memory). */
const MAX_SCOPES = 4096;
/** Refs are never reused in a process: a ref names one scope of one generation, or nothing. */
let nextScope = 0;

/**
 * The short refs of decision scopes for one config generation (its DecisionPath holds one): the
 * same route, action and peer always get the same ref, found by three Map lookups on strings the
 * request already holds (route name and action from the config, the peer's ID from its
 * connection), whose hashes V8 keeps after the first lookup. A new generation gets new refs, so
 * its decisions are never served from an older one's (as the generation in the key did before).
 * Past MAX_SCOPES the memo starts over: later lookups get new refs, and the decisions stored
 * under the old ones are only missed (they age out of the LRU), never confused with others.
 */
export class DecisionScopes {
  private readonly refs = new Map<string, Map<string, Map<string, string>>>();
  private count = 0;

  ref(route: string, action: string, peer: string): string {
    let byAction = this.refs.get(route);
    if (byAction === undefined) this.refs.set(route, (byAction = new Map()));
    let byPeer = byAction.get(action);
    if (byPeer === undefined) byAction.set(action, (byPeer = new Map()));
    let ref = byPeer.get(peer);
    if (ref === undefined) {
      if (this.count >= MAX_SCOPES) {
        this.refs.clear();
        this.count = 0;
        return this.ref(route, action, peer);
      }
      ref = (nextScope++).toString(36);
      byPeer.set(peer, ref);
      this.count++;
    }
    return ref;
  }
}

const ONE = (): number => 1;

/** lru-cache's get() fills in its options object; one shared object spares a fresh `{}` per lookup. */
const GET_OPTIONS: { status?: unknown } = {};

interface Entry {
  readonly decision: CachedDecision;
  /** Epoch ms; checked against the request's own clock reading, so a hit costs no timer call. */
  readonly expiresAt: number;
}

function flatCopy(key: string): string {
  return Buffer.from(key, 'utf8').toString('utf8');
}

export class DecisionCache {
  private readonly lru: LRUCache<string, Entry> | undefined;
  private hits = 0;
  private misses = 0;
  private readonly hitCell: CounterCell;
  private readonly missCell: CounterCell;
  /** Per route name; survives reloads as the cache does (bounded by the route names configured). */
  private readonly perRoute = new Map<string, RouteCacheStats>();

  constructor(maxEntries: number, metrics: Metrics) {
    this.hitCell = metrics.cacheHits.cell();
    this.missCell = metrics.cacheMisses.cell();
    this.lru =
      maxEntries > 0
        ? new LRUCache<string, Entry>({
            // The bound as a size of one per entry, not `max`: with `max`, lru-cache allocates its
            // arrays for every entry up front (100,000 by default: 1.5 MiB of heap and 2.3 MiB of
            // typed arrays, ~12 ms); sized this way they grow with what is cached. The same
            // eviction (oldest first, reason 'evict'); a lookup no slower (sizes are counted on set).
            maxSize: maxEntries,
            sizeCalculation: ONE,
            // Expiry is ours (Entry.expiresAt): lru-cache's TTL machinery would read the clock on every get.
            dispose: (_value, _key, reason) => {
              if (reason === 'evict') metrics.cacheEvictions.inc();
            },
          })
        : undefined;
  }

  get enabled(): boolean {
    return this.lru !== undefined;
  }

  /** The counters of one route, created on first use; callers keep the object (no lookup per request). */
  routeStats(route: string): RouteCacheStats {
    let stats = this.perRoute.get(route);
    if (!stats) this.perRoute.set(route, (stats = { hits: 0, misses: 0, bounds: { pdp: 0, allow_ttl: 0, route_ttl: 0, grant_exp: 0, posture: 0 } }));
    return stats;
  }

  get(key: string, now: number, route?: RouteCacheStats): CachedDecision | undefined {
    const entry = this.lru?.get(key, GET_OPTIONS as object);
    if (entry !== undefined && now < entry.expiresAt) {
      this.hits++;
      this.hitCell.n++;
      if (route) route.hits++;
      return entry.decision;
    }
    if (entry !== undefined) this.lru!.delete(key);
    this.misses++;
    this.missCell.n++;
    if (route) route.misses++;
    return undefined;
  }

  /** Stores a decision; false when it was not stored (cache off, or a lifetime under 1 ms). */
  set(key: string, decision: CachedDecision, ttlMs: number, now = Date.now()): boolean {
    if (!this.lru || !(ttlMs >= 1)) return false;
    // Keys are built by concatenation, which V8 keeps as a tree of string pieces; the copy stored
    // is one flat string, less than half the memory (the miss path pays for the copy, hits don't).
    this.lru.set(flatCopy(key), { decision, expiresAt: now + Math.floor(ttlMs) });
    return true;
  }

  /** Drops every entry decided for this grant or this peer; returns how many were still live. */
  purge(match: { jti?: string; peer?: string }, now = Date.now()): number {
    if (!this.lru) return 0;
    const doomed: string[] = [];
    let live = 0;
    for (const [key, { decision, expiresAt }] of this.lru.entries()) {
      if ((match.jti !== undefined && decision.jti === match.jti) || (match.peer !== undefined && decision.peer === match.peer)) {
        doomed.push(key);
        if (now < expiresAt) live++;
      }
    }
    for (const key of doomed) this.lru.delete(key);
    return live;
  }

  flush(): number {
    const size = this.lru?.size ?? 0;
    this.lru?.clear();
    return size;
  }

  /** Entries held, expired ones not yet dropped included (they go on their next lookup or by LRU). */
  get size(): number {
    return this.lru?.size ?? 0;
  }

  stats(): { entries: number; hits: number; misses: number; hitRatio: number } {
    const total = this.hits + this.misses;
    return { entries: this.size, hits: this.hits, misses: this.misses, hitRatio: total === 0 ? 0 : this.hits / total };
  }

  /**
   * Per route: live entries, hits, misses, hit ratio, and how many stored allows each TTL bound
   * limited. Walks the entries (at most cache.maxEntries): an admin call, never the request path.
   */
  routeReport(routes: readonly string[], now = Date.now()): { route: string; entries: number; hits: number; misses: number; hitRatio: number; bounds: Record<TtlBound, number> }[] {
    const entries = new Map<string, number>();
    if (this.lru) for (const { decision, expiresAt } of this.lru.values()) if (now < expiresAt) entries.set(decision.route, (entries.get(decision.route) ?? 0) + 1);
    return routes.map((route) => {
      const { hits, misses, bounds } = this.routeStats(route);
      return { route, entries: entries.get(route) ?? 0, hits, misses, hitRatio: hits + misses === 0 ? 0 : hits / (hits + misses), bounds: { ...bounds } };
    });
  }
}
