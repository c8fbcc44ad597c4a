// Revoked grants (by jti) and revoked grantees (by sub). A revocation is kept until the grant it
// refuses would have expired anyway, then forgotten, so the list stays bounded.
import { LRUCache } from 'lru-cache';

/** How long a revocation is kept when the grant's exp is unknown (the longest grant we expect). */
export const DEFAULT_REVOCATION_TTL_MS = 24 * 3_600_000;
const MAX_REVOCATIONS = 100_000;

export class Revocations {
  private readonly jtis = new LRUCache<string, true>({ max: MAX_REVOCATIONS, ttl: DEFAULT_REVOCATION_TTL_MS, ttlAutopurge: true });
  /** sub → revocation time: grants issued at or before it are refused. */
  private readonly subs = new LRUCache<string, number>({ max: MAX_REVOCATIONS, ttl: DEFAULT_REVOCATION_TTL_MS, ttlAutopurge: true });

  revokeJti(jti: string, expMs?: number, now = Date.now()): void {
    this.jtis.set(jti, true, { ttl: Math.max(1, (expMs ?? now + DEFAULT_REVOCATION_TTL_MS) - now) });
  }

  revokeSub(sub: string, now = Date.now()): void {
    this.subs.set(sub, now);
  }

  /** A grant is refused if its jti was revoked, or its sub was revoked after it was issued. */
  isRevoked(jti: string, sub: string, iatMs: number): boolean {
    if (this.jtis.has(jti)) return true;
    const since = this.subs.get(sub);
    return since !== undefined && iatMs <= since;
  }

  get size(): number {
    return this.jtis.size + this.subs.size;
  }
}
