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

/**
 * A SPIFFE bundle's JWT keys say `use: "jwt-svid"` (SPIFFE Trust Domain and Bundle, 4.2.2): they
 * are signing keys, but jose selects only keys without `use` or with `use: "sig"`, so every
 * token of such an issuer would be refused without a hint. Read them as `sig`; any other `use`
 * (`enc`, `x509-svid`) is left as it is, and so never verifies a token.
 */
function asSigningKeys(jwks: JSONWebKeySet): JSONWebKeySet {
  if (!Array.isArray(jwks.keys) || !jwks.keys.some((key) => (key as { use?: unknown }).use === 'jwt-svid')) return jwks;
  return { ...jwks, keys: jwks.keys.map((key) => ((key as { use?: unknown }).use === 'jwt-svid' ? { ...key, use: 'sig' } : key)) };
}

/** fetch for jose's remote JWKS: `inner`'s answer, with SPIFFE bundle keys read as signing keys. */
const signingKeysFetch = (inner: typeof fetch) => async (url: string, init: RequestInit): Promise<Response> => {
  const response = await inner(url, init);
  if (response.status !== 200) return response;
  const text = await response.text();
  let jwks: JSONWebKeySet;
  try {
    jwks = JSON.parse(text) as JSONWebKeySet;
  } catch {
    // Not JSON: jose says so, as it would have.
    return new Response(text, { status: 200, headers: response.headers });
  }
  return new Response(JSON.stringify(typeof jwks === 'object' && jwks !== null ? asSigningKeys(jwks) : jwks), { status: 200, headers: { 'content-type': 'application/json' } });
};

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
    return createLocalJWKSet(asSigningKeys(jwks));
  }
  if (config.jwksUrl) {
    return createRemoteJWKSet(new URL(config.jwksUrl), { timeoutDuration: timeoutMs, cooldownDuration: 30_000, cacheMaxAge: 600_000, [customFetch]: signingKeysFetch(countingFetch(onFetch)) });
  }
  if (config.publicKeyFile) return pemKeyGetter(config.publicKeyFile);
  throw new KeySetError(`issuer ${config.issuer}: no key source`);
}
