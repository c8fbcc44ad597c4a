// A device/workload posture assertion (SPEC "Tokens"): names the peer and a trust tier.
import type { JWTPayload } from 'jose';
import type { DenyReason } from '../decision/denial.ts';
import type { PeerIdentity } from '../identity/peer-verifier.ts';

export type TrustTier = 'low' | 'medium' | 'high';
export const TIER_RANK: Record<TrustTier, number> = { low: 1, medium: 2, high: 3 };

export interface PostureAssertion {
  readonly sub: string;
  readonly iatMs: number;
  readonly expMs: number;
  readonly tier: TrustTier | undefined;
  readonly posture: Readonly<Record<string, unknown>>;
}

export function shapePosture(claims: JWTPayload, _token?: string, nowMs = Number.POSITIVE_INFINITY): PostureAssertion {
  if (typeof claims.sub !== 'string') throw new Error('sub is required');
  if (typeof claims.iat !== 'number') throw new Error('iat is required');
  const posture = claims.posture;
  if (typeof posture !== 'object' || posture === null || Array.isArray(posture)) throw new Error('posture must be an object');
  const trust = (posture as Record<string, unknown>).trust;
  const tier = trust === 'low' || trust === 'medium' || trust === 'high' ? trust : undefined;
  if (trust !== undefined && tier === undefined) throw new Error('posture.trust must be low, medium or high');
  // posture.maxAge counts from iat, or from when we first saw it if iat is ahead (SPEC "Tokens").
  return { sub: claims.sub, iatMs: Math.min(claims.iat * 1000, nowMs), expMs: (claims.exp ?? 0) * 1000, tier, posture: posture as Record<string, unknown> };
}

export function checkPosture(posture: PostureAssertion, peer: PeerIdentity, maxAgeMs: number, now: number): DenyReason | undefined {
  if (posture.sub !== peer.svid.id.uri) return 'posture_invalid';
  if (now >= posture.expMs || now - posture.iatMs > maxAgeMs) return 'posture_stale';
  return undefined;
}

/** When an assertion stops being usable: its exp or the end of posture.maxAge. */
export function postureDeadline(posture: PostureAssertion, maxAgeMs: number): number {
  return Math.min(posture.expMs, posture.iatMs + maxAgeMs);
}
