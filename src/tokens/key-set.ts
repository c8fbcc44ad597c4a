// Issuer keys for grants and posture assertions: a JWKS file, a remote JWKS (cached, with a
// cooldown, never blocking tokens already verified), or one PEM public key. Built once per
// config load; `jose` does every signature check.
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, createRemoteJWKSet, customFetch, importSPKI, importX509, type JWTVerifyGetKey, type JSONWebKeySet, type CryptoKey } from 'jose';
import type { IssuerConfig } from '../config/schema.ts';
import { countingFetch, type JwksFetchResult } from './jwks-fetch.ts';

/** Asymmetric algorithms only (SPEC "Tokens"): never `none`, never HMAC. */
export const ALLOWED_ALGORITHMS = ['ES256', 'ES384', 'EdDSA', 'Ed25519', 'RS256', 'PS256'];

export class KeySetError extends Error {
  override readonly name = 'KeySetError';
}

function pemKeyGetter(file: string): JWTVerifyGetKey {
  const pem = readFileSync(file, 'utf8');
  if (!pem.includes('-----BEGIN PUBLIC KEY-----') && !pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new KeySetError(`${file}: expected a PEM public key (SPKI) or certificate`);
  }
  const byAlg = new Map<string, Promise<CryptoKey>>();
  return (header) => {
    const alg = header.alg ?? '';
    let key = byAlg.get(alg);
    if (!key) {
      // jose refuses an algorithm the key type cannot do: no key-type confusion.
      key = pem.includes('CERTIFICATE') ? importX509(pem, alg) : importSPKI(pem, alg);
      byAlg.set(alg, key);
    }
    return key;
  };
}

export function issuerKeys(config: IssuerConfig, timeoutMs: number, onFetch: (result: JwksFetchResult) => void = () => undefined): JWTVerifyGetKey {
  if (config.jwksFile) {
    let jwks: JSONWebKeySet;
    try {
      jwks = JSON.parse(readFileSync(config.jwksFile, 'utf8')) as JSONWebKeySet;
    } catch (error) {
      throw new KeySetError(`${config.jwksFile}: not a readable JWKS (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, { cause: error });
    }
    if (!Array.isArray(jwks.keys)) throw new KeySetError(`${config.jwksFile}: a JWKS needs a "keys" array`);
    return createLocalJWKSet(jwks);
  }
  if (config.jwksUrl) {
    return createRemoteJWKSet(new URL(config.jwksUrl), { timeoutDuration: timeoutMs, cooldownDuration: 30_000, cacheMaxAge: 600_000, [customFetch]: countingFetch(onFetch) });
  }
  if (config.publicKeyFile) return pemKeyGetter(config.publicKeyFile);
  throw new KeySetError(`issuer ${config.issuer}: no key source`);
}
