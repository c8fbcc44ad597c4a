// Issuer key sets as `check` and the proxy load them: SPIFFE bundle keys (`use: "jwt-svid"`, the
// SPIFFE Trust Domain and Bundle standard's value for JWT-SVID signing keys) must verify tokens,
// from a JWKS file and from a jwksUrl; an encryption key (`use: "enc"`) still never does.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportJWK, generateKeyPair, jwtVerify, SignJWT, type CryptoKey, type JWK } from 'jose';
import { issuerKeys } from '../../../src/tokens/key-set.ts';

const ISS = 'https://jit.example.org';

describe('issuer key sets', () => {
  let dir: string;
  let server: Server;
  let served = '';
  let url = '';
  let privateKey: CryptoKey;
  let jwk: JWK;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-keyset-'));
    const pair = await generateKeyPair('ES256');
    privateKey = pair.privateKey;
    jwk = { ...(await exportJWK(pair.publicKey)), kid: 'bundle-1', alg: 'ES256' };
    server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(served);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}/keys`;
  });
  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    await new Promise((resolve) => server.close(resolve));
  });

  const grant = () => new SignJWT({ sub: 'spiffe://example.org/ns/prod/sa/web' }).setProtectedHeader({ alg: 'ES256', kid: 'bundle-1' }).setIssuer(ISS).setIssuedAt().setExpirationTime('5m').sign(privateKey);

  function jwksFile(use: string): string {
    const file = join(dir, `${use}.json`);
    writeFileSync(file, JSON.stringify({ keys: [{ ...jwk, use }] }));
    return file;
  }

  it('verifies a grant signed with a SPIFFE bundle key (use: "jwt-svid") from a JWKS file', async () => {
    const keys = issuerKeys({ issuer: ISS, jwksFile: jwksFile('jwt-svid') }, 1000);
    const { payload } = await jwtVerify(await grant(), keys, { issuer: ISS });
    expect(payload.sub).toBe('spiffe://example.org/ns/prod/sa/web');
  });

  it('verifies a grant signed with a SPIFFE bundle key served at a jwksUrl', async () => {
    served = JSON.stringify({ keys: [{ ...jwk, use: 'jwt-svid' }], spiffe_refresh_hint: 300 });
    const keys = issuerKeys({ issuer: ISS, jwksUrl: url }, 1000);
    const { payload } = await jwtVerify(await grant(), keys, { issuer: ISS });
    expect(payload.sub).toBe('spiffe://example.org/ns/prod/sa/web');
  });

  it('never selects an encryption key (use: "enc"), from a file or a URL', async () => {
    await expect(jwtVerify(await grant(), issuerKeys({ issuer: ISS, jwksFile: jwksFile('enc') }, 1000))).rejects.toThrow(/no applicable key/i);
    served = JSON.stringify({ keys: [{ ...jwk, use: 'enc' }] });
    await expect(jwtVerify(await grant(), issuerKeys({ issuer: ISS, jwksUrl: url }, 1000))).rejects.toThrow(/no applicable key/i);
  });

  it('a jwksUrl that answers something other than a JWKS still fails as jose reports it', async () => {
    served = 'not json';
    await expect(jwtVerify(await grant(), issuerKeys({ issuer: ISS, jwksUrl: url }, 1000))).rejects.toThrow(/JSON/);
  });
});
