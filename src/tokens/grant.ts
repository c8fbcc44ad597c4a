// A JIT grant (SPEC "Tokens"): who it was issued to, for which actions and resources, until when.
// Shaped once when the token is first verified; checked against the request every time.
import type { JWTPayload } from 'jose';
import { actionMatcher, resourceMatcher, type Matcher } from '../pdp/patterns.ts';
import type { DenyReason } from '../decision/denial.ts';
import type { PeerIdentity } from '../identity/peer-verifier.ts';

export interface Grant {
  readonly jti: string;
  readonly iss: string;
  readonly sub: string;
  /** `iat`, or the time it was verified if that is earlier (an issuer clock ahead of ours). */
  readonly iatMs: number;
  readonly expMs: number;
  readonly scope: Matcher;
  readonly resources: Matcher | undefined;
  readonly intent: string | undefined;
  /** `cnf.x5t#S256`: base64url SHA-256 of the leaf certificate the grant is bound to. */
  readonly certThumbprint: string | undefined;
  readonly approver: string | undefined;
  readonly justification: string | undefined;
  /** The verified claims, for remote PDPs (never the token itself). */
  readonly claims: JWTPayload;
}

const MAX_SCOPE_ENTRIES = 64;
const JTI = /^[\x21-\x7e]{1,256}$/;

function optionalString(value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new Error(`${name} must be a string`);
  return value;
}

/** Shapes verified claims into a Grant, or throws with what is wrong (→ grant_invalid). */
export function shapeGrant(claims: JWTPayload, _token?: string, nowMs = Number.POSITIVE_INFINITY): Grant {
  if (typeof claims.jti !== 'string' || claims.jti === '') throw new Error('jti is required');
  // The jti is forwarded as x-jit-grant-id and written to the audit log: printable ASCII only.
  if (!JTI.test(claims.jti)) throw new Error('jti must be 1 to 256 printable ASCII characters');
  if (typeof claims.sub !== 'string') throw new Error('sub is required');
  if (typeof claims.iat !== 'number') throw new Error('iat is required');
  if (typeof claims.scope !== 'string' || claims.scope.trim() === '') throw new Error('scope is required');
  const scope = claims.scope.split(' ').filter(Boolean);
  const resources = claims.resources;
  if (resources !== undefined && (!Array.isArray(resources) || !resources.every((r) => typeof r === 'string'))) {
    throw new Error('resources must be an array of strings');
  }
  if (scope.length > MAX_SCOPE_ENTRIES || (resources?.length ?? 0) > MAX_SCOPE_ENTRIES) throw new Error('too many scope or resources entries');
  const cnf = claims.cnf as Record<string, unknown> | undefined;
  if (cnf !== undefined && (typeof cnf !== 'object' || cnf === null)) throw new Error('cnf must be an object');
  const thumbprint = cnf?.['x5t#S256'];
  if (cnf !== undefined && typeof thumbprint !== 'string') throw new Error('cnf must carry x5t#S256');
  return {
    jti: claims.jti,
    iss: claims.iss ?? '',
    sub: claims.sub,
    // SPEC "Tokens": an iat ahead of us (within clockSkew) counts from when we first saw the
    // grant, so it never stretches maxGrantTtl or grants.maxLifetime, nor escapes a revocation.
    iatMs: Math.min(claims.iat * 1000, nowMs),
    expMs: (claims.exp ?? 0) * 1000,
    scope: actionMatcher(scope),
    resources: resources ? resourceMatcher(resources as string[]) : undefined,
    intent: optionalString(claims.intent, 'intent'),
    certThumbprint: thumbprint as string | undefined,
    approver: optionalString(claims.approver, 'approver'),
    justification: optionalString(claims.justification, 'justification'),
    claims,
  };
}

/** The per-request checks of a verified grant; undefined when it holds. Expiry is checked first. */
export function checkGrant(grant: Grant, peer: PeerIdentity, action: string, resource: string, now: number, maxLifetimeMs: number): DenyReason | undefined {
  if (now >= grant.expMs) return 'grant_expired';
  // grants.maxLifetime: also what lets a revocation be forgotten safely (SPEC "Fleet-wide revocation").
  if (grant.expMs - grant.iatMs > maxLifetimeMs) return 'grant_ttl_too_long';
  if (grant.sub !== peer.svid.id.uri) return 'grant_subject_mismatch';
  if (grant.certThumbprint !== undefined && grant.certThumbprint !== peer.svid.leafSha256B64u) return 'grant_subject_mismatch';
  if (!grant.scope.matches(action)) return 'grant_scope';
  if (grant.resources && !grant.resources.matches(resource)) return 'grant_scope';
  return undefined;
}
