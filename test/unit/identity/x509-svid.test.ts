// X509-SVID rules on parsed chains (no sockets): the root-path leaf, the 16-certificate cap, and
// the presented chain's own rules that `svid inspect` applies without a bundle.
import { X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { DevCa, x509, type Issued } from '../../../src/cli/dev-pki.ts';
import { checkPresentedChain, leafSpiffeId, SvidError, verifyX509Svid } from '../../../src/identity/x509-svid.ts';
import { constrainRoot, MAX_INTERMEDIATES, TrustBundleSet } from '../../../src/identity/trust-bundle.ts';

const HOUR = 3_600_000;

function certs(...issued: Issued[]): X509Certificate[] {
  return issued.map((i) => new X509Certificate(i.certPem));
}

function rejectionOf(fn: () => unknown): SvidError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(SvidError);
    return error as SvidError;
  }
  throw new Error('expected an SvidError, nothing was thrown');
}

describe('X509-SVID rules', () => {
  let ca: DevCa;
  let bundles: TrustBundleSet;
  beforeAll(async () => {
    ca = await DevCa.create('example.org');
    bundles = new TrustBundleSet(new Map([['example.org', certs(ca.root)]]));
  });

  /** Leaf first, then `n` intermediates, each signed by the next (the last by the root). */
  async function chainOf(n: number): Promise<X509Certificate[]> {
    const cas: Issued[] = [];
    for (let i = 0; i < n; i++) cas.push(await ca.intermediate({ subject: `CN=intermediate ${i}` }, cas[i - 1]));
    const leaf = await ca.svid('/ns/prod/sa/web', {}, cas.at(-1));
    return certs(leaf, ...cas.reverse());
  }

  it('refuses a leaf whose SPIFFE ID has a root path', async () => {
    const leaf = certs(await ca.svid(''))[0]!;
    const error = rejectionOf(() => leafSpiffeId(leaf));
    expect([error.rejection, error.message]).toEqual(['bad_spiffe_id', expect.stringContaining('non-root path')]);
    expect(rejectionOf(() => verifyX509Svid([leaf], bundles)).rejection).toBe('bad_spiffe_id');
  });

  it('accepts 16 certificates and refuses 17', async () => {
    expect(verifyX509Svid(await chainOf(15), bundles).id.uri).toBe('spiffe://example.org/ns/prod/sa/web');
    const long = await chainOf(16);
    const error = rejectionOf(() => verifyX509Svid(long, bundles));
    expect([error.rejection, error.message]).toEqual(['untrusted_chain', expect.stringContaining('17 certificates')]);
    expect(rejectionOf(() => checkPresentedChain(long)).rejection).toBe('untrusted_chain');
    expect(() => checkPresentedChain(long.slice(0, 16))).not.toThrow();
  });

  it('the TLS copy of a root limits the path below it to 15 intermediates', async () => {
    const limit = (issued: Issued) => new x509.X509Certificate(constrainRoot(new X509Certificate(issued.certPem), ['example.org'])!.cert.raw).getExtension(x509.BasicConstraintsExtension);
    expect(limit(ca.root)).toMatchObject({ ca: true, pathLength: MAX_INTERMEDIATES });
    expect(constrainRoot(new X509Certificate(ca.root.certPem), ['example.org'])!.nameConstrained).toBe(true);
  });

  describe('checkPresentedChain (no bundle)', () => {
    it('passes a leaf alone and a leaf with its CA intermediate', async () => {
      const alone = certs(await ca.svid('/a'));
      expect(() => checkPresentedChain(alone)).not.toThrow();
      const intermediate = await ca.intermediate();
      const chain = certs(await ca.svid('/a', {}, intermediate), intermediate);
      expect(() => checkPresentedChain(chain)).not.toThrow();
    });

    it.each([
      ['an intermediate that is not a CA', { ca: false }, 'untrusted_chain', /chain\[1\]: signing certificate must have CA flag set/],
      ['a CA intermediate without keyCertSign', { keyUsages: x509.KeyUsageFlags.cRLSign }, 'key_usage', /chain\[1\]: signing certificate must have 'keyCertSign'/],
      ['an expired intermediate', { notBefore: new Date(Date.now() - 2 * HOUR), notAfter: new Date(Date.now() - HOUR) }, 'expired', /chain\[1\] expired/],
    ])('refuses %s', async (_what, options, rejection, message) => {
      const intermediate = await ca.intermediate(options);
      const leaf = await ca.svid('/a', {}, intermediate);
      const error = rejectionOf(() => checkPresentedChain(certs(leaf, intermediate)));
      expect(error.rejection).toBe(rejection);
      expect(error.message).toMatch(message);
    });

    it('refuses a chain whose certificates are not each issued by the next', async () => {
      const [a, b] = [await ca.intermediate({ subject: 'CN=a' }), await ca.intermediate({ subject: 'CN=b' })];
      const leaf = await ca.svid('/a', {}, a);
      // b did not sign the leaf: presented in the wrong place.
      const error = rejectionOf(() => checkPresentedChain(certs(leaf, b, a)));
      expect([error.rejection, error.message]).toEqual(['untrusted_chain', 'leaf is not issued by chain[1] (each certificate must be signed by the next)']);
      expect(() => checkPresentedChain(certs(leaf, a))).not.toThrow();
    });
  });
});
