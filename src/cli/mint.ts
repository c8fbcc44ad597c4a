// `portcullis grant mint` (SPEC) and `portcullis posture mint` (ours, for demos and tests):
// sign a token with a PEM private key; the algorithm follows the key type.
import { createHash, createPrivateKey, randomUUID, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SignJWT } from 'jose';
import { parseDuration } from '../config/duration.ts';

export function algorithmFor(key: KeyObject): string {
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve === 'prime256v1' || curve === 'P-256') return 'ES256';
      if (curve === 'secp384r1' || curve === 'P-384') return 'ES384';
      throw new Error(`unsupported EC curve ${curve}`);
    }
    case 'ed25519':
      return 'EdDSA';
    case 'rsa':
      return 'RS256';
    case 'rsa-pss':
      return 'PS256';
    default:
      throw new Error(`unsupported key type ${key.asymmetricKeyType}`);
  }
}

export function readPrivateKey(file: string): KeyObject {
  try {
    return createPrivateKey(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`--key ${file}: not a readable PEM private key (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, { cause: error });
  }
}

function ttlSeconds(ttl: string): number {
  const ms = parseDuration(ttl);
  if (ms === undefined || ms <= 0) throw new Error(`--ttl: expected a duration like "5m", got ${JSON.stringify(ttl)}`);
  return ms / 1000;
}

export interface GrantMintOptions {
  readonly key: KeyObject;
  readonly iss: string;
  readonly sub: string;
  readonly aud: string;
  readonly scope: string;
  readonly ttl: string;
  readonly intent?: string;
  readonly resources?: readonly string[];
  /** PEM of the certificate the grant is bound to (`cnf.x5t#S256`). */
  readonly cnfCertPem?: string;
  readonly approver?: string;
  readonly justification?: string;
  readonly jti?: string;
  readonly kid?: string;
  /** Issued-at override in ms (tests). */
  readonly nowMs?: number;
}

export async function mintGrant(o: GrantMintOptions): Promise<string> {
  const iat = (o.nowMs ?? Date.now()) / 1000;
  const claims: Record<string, unknown> = { scope: o.scope };
  if (o.intent !== undefined) claims.intent = o.intent;
  if (o.resources) claims.resources = o.resources;
  if (o.approver) claims.approver = o.approver;
  if (o.justification) claims.justification = o.justification;
  if (o.cnfCertPem) {
    const der = new X509Certificate(o.cnfCertPem).raw;
    claims.cnf = { 'x5t#S256': createHash('sha256').update(der).digest('base64url') };
  }
  return new SignJWT(claims)
    .setProtectedHeader({ alg: algorithmFor(o.key), typ: 'JWT', ...(o.kid ? { kid: o.kid } : {}) })
    .setIssuer(o.iss)
    .setSubject(o.sub)
    .setAudience(o.aud)
    .setIssuedAt(Math.floor(iat))
    .setExpirationTime(Math.floor(iat) + ttlSeconds(o.ttl))
    .setJti(o.jti ?? randomUUID())
    .sign(o.key);
}

export interface PostureMintOptions {
  readonly key: KeyObject;
  readonly iss: string;
  readonly sub: string;
  readonly trust: string;
  readonly ttl: string;
  readonly kid?: string;
  readonly nowMs?: number;
}

export async function mintPosture(o: PostureMintOptions): Promise<string> {
  const iat = Math.floor((o.nowMs ?? Date.now()) / 1000);
  return new SignJWT({ posture: { trust: o.trust } })
    .setProtectedHeader({ alg: algorithmFor(o.key), typ: 'JWT', ...(o.kid ? { kid: o.kid } : {}) })
    .setIssuer(o.iss)
    .setSubject(o.sub)
    .setIssuedAt(iat)
    .setExpirationTime(iat + ttlSeconds(o.ttl))
    .setJti(randomUUID())
    .sign(o.key);
}
