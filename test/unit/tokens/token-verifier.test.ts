// The verified-token cache is keyed by the tail of a token's signature (hashing a whole fresh
// token string per request is slow). A forgery can copy that tail: these tests pin that it is
// still refused, and that it never displaces the genuine token's entry.
import { describe, expect, it } from 'vitest';
import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT, type JWTPayload } from 'jose';
import { isRefused, TokenVerifier } from '../../../src/tokens/token-verifier.ts';

async function setup() {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwks = createLocalJWKSet({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' }] });
  const verifier = new TokenVerifier<JWTPayload>({
    shape: (claims) => claims,
    issuers: new Map([['https://iss.example', jwks]]),
    audience: undefined,
    clockSkewMs: 0,
    maxTokenBytes: 8192,
    requiredClaims: [],
    cacheEntries: 100,
  });
  const sign = (claims: JWTPayload) =>
    new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer('https://iss.example').setIssuedAt().setExpirationTime('5m').sign(privateKey);
  return { verifier, sign };
}

/** Swaps the payload of `token` for `claims`, keeping its signature (and so its cache key). */
function withPayload(token: string, claims: JWTPayload): string {
  const [header, , signature] = token.split('.');
  return `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`;
}

describe('TokenVerifier cache', () => {
  it('serves a verified token from the cache, synchronously', async () => {
    const { verifier, sign } = await setup();
    const token = await sign({ sub: 'a', pad: 'x'.repeat(400) });
    const first = await verifier.verify(token, Date.now());
    expect(isRefused(first)).toBe(false);
    const again = verifier.verify(token, Date.now());
    expect(again).toBe(first);
    expect(verifier.cached(token, Date.now())).toBe(first);
  });

  it('refuses a forgery that copies a cached token\'s signature, and keeps the genuine entry', async () => {
    const { verifier, sign } = await setup();
    const genuine = await sign({ sub: 'spiffe://example.org/ns/prod/sa/web', pad: 'x'.repeat(400) });
    const verified = await verifier.verify(genuine, Date.now());
    expect(isRefused(verified)).toBe(false);
    const forged = withPayload(genuine, { sub: 'spiffe://example.org/ns/prod/sa/admin', iss: 'https://iss.example', exp: Math.floor(Date.now() / 1000) + 300, pad: 'x'.repeat(400) });
    expect(forged.slice(-43)).toBe(genuine.slice(-43));
    expect(verifier.cached(forged, Date.now())).toBeUndefined();
    const refused = await verifier.verify(forged, Date.now());
    expect(refused).toMatchObject({ problem: 'invalid' });
    // The forgery's refusal is remembered for the forgery only; the genuine token is still a hit.
    expect(verifier.cached(forged, Date.now())).toMatchObject({ problem: 'invalid' });
    expect(verifier.cached(genuine, Date.now())).toBe(verified);
  });

  it('refuses a genuine token\'s signature on a forgery even before the genuine one was seen, and then accepts the genuine one', async () => {
    const { verifier, sign } = await setup();
    const genuine = await sign({ sub: 'a', pad: 'y'.repeat(400) });
    const forged = withPayload(genuine, { sub: 'b', iss: 'https://iss.example', exp: Math.floor(Date.now() / 1000) + 300, pad: 'y'.repeat(400) });
    expect(await verifier.verify(forged, Date.now())).toMatchObject({ problem: 'invalid' });
    const accepted = await verifier.verify(genuine, Date.now());
    expect(isRefused(accepted)).toBe(false);
    expect(verifier.cached(genuine, Date.now())).toBe(accepted);
    expect(verifier.cached(forged, Date.now())).toMatchObject({ problem: 'invalid' });
  });
});
