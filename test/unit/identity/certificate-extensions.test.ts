// The DER reader that replaced @peculiar/x509 on the run path reads what the library read: the
// same SAN URIs, cA flag and keyUsage bits for every shape of certificate the X509-SVID rules meet,
// and on damaged DER it either agrees with the library or refuses (a CertificateDerError), never
// another answer. The library stays the yardstick here (and in the dev PKI).
import { X509Certificate } from 'node:crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { generateKeys, x509 } from '../../../src/cli/dev-pki.ts';
import { CertificateDerError, certificateExtensions, type CertificateExtensions } from '../../../src/identity/certificate-extensions.ts';
import { leafSpiffeId, SvidError } from '../../../src/identity/x509-svid.ts';

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
type Keys = Awaited<ReturnType<typeof generateKeys>>;

/** What @peculiar/x509 reads from the same DER, as x509-svid.ts used to read it. */
function byLibrary(der: Uint8Array): CertificateExtensions {
  const parsed = new x509.X509Certificate(der);
  const san = parsed.getExtension(x509.SubjectAlternativeNameExtension);
  return {
    uris: san ? san.names.items.filter((name) => name.type === 'url').map((name) => name.value) : [],
    ca: parsed.getExtension(x509.BasicConstraintsExtension)?.ca ?? false,
    keyUsage: parsed.getExtension(x509.KeyUsagesExtension)?.usages,
  };
}

let keys: Keys;
async function certWith(extensions: x509.Extension[]): Promise<Uint8Array> {
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '01',
    subject: 'O=SPIFFE',
    issuer: 'CN=test CA',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3_600_000),
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: keys.privateKey,
    extensions,
  });
  return new Uint8Array(cert.rawData);
}

const F = x509.KeyUsageFlags;
const san = (names: { type: 'url' | 'dns' | 'email' | 'ip'; value: string }[], critical = false) => new x509.SubjectAlternativeNameExtension(names, critical);

describe('certificateExtensions', () => {
  beforeAll(async () => {
    keys = await generateKeys();
  });

  it('reads what @peculiar/x509 reads, for each shape of certificate', async () => {
    const shapes: x509.Extension[][] = [
      [],
      [san([{ type: 'url', value: 'spiffe://example.org/ns/prod/sa/web' }])],
      [san([{ type: 'dns', value: 'localhost' }, { type: 'url', value: 'spiffe://a.org/x' }, { type: 'email', value: 'a@b.org' }, { type: 'url', value: 'spiffe://b.org/y' }, { type: 'ip', value: '10.0.0.1' }], true)],
      [san([{ type: 'dns', value: 'only.example.org' }])],
      [new x509.BasicConstraintsExtension(true, 3, true), new x509.KeyUsagesExtension(F.keyCertSign | F.cRLSign, true)],
      [new x509.BasicConstraintsExtension(false, undefined, false)],
      [new x509.BasicConstraintsExtension(true)],
      [new x509.KeyUsagesExtension(F.digitalSignature)],
      [new x509.KeyUsagesExtension(F.decipherOnly | F.digitalSignature, true)],
      [new x509.KeyUsagesExtension(F.encipherOnly)],
      // The first of a repeated extension counts, as it did for the library.
      [san([{ type: 'url', value: 'spiffe://first.org/a' }]), san([{ type: 'url', value: 'spiffe://second.org/b' }])],
      [new x509.KeyUsagesExtension(F.digitalSignature), new x509.KeyUsagesExtension(F.keyCertSign)],
    ];
    // Every keyUsage bit alone and a spread of combinations.
    for (let bits = 1; bits < 512; bits = bits * 3 + 1) shapes.push([new x509.KeyUsagesExtension(bits, bits % 2 === 0)]);
    for (let bit = 0; bit < 9; bit++) shapes.push([new x509.KeyUsagesExtension(1 << bit)]);
    for (const extensions of shapes) {
      const der = await certWith(extensions);
      new X509Certificate(der); // OpenSSL reads it too
      expect(certificateExtensions(der)).toEqual(byLibrary(der));
    }
  });

  it('on damaged DER, agrees with the library or refuses; it never answers otherwise', async () => {
    const der = await certWith([new x509.BasicConstraintsExtension(false, undefined, true), new x509.KeyUsagesExtension(F.digitalSignature, true), san([{ type: 'url', value: 'spiffe://example.org/ns/prod/sa/web' }, { type: 'dns', value: 'localhost' }])]);
    const damage = fc.oneof(
      fc.record({ kind: fc.constant('byte' as const), at: fc.nat({ max: der.length - 1 }), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('cut' as const), at: fc.nat({ max: der.length - 1 }), value: fc.constant(0) }),
    );
    let refused = 0;
    fc.assert(
      fc.property(fc.array(damage, { minLength: 1, maxLength: 3 }), (damages) => {
        let bytes = Uint8Array.from(der);
        for (const d of damages) {
          if (d.kind === 'cut') bytes = bytes.subarray(0, d.at);
          else if (d.at < bytes.length) bytes[d.at] = d.value;
        }
        let ours: CertificateExtensions;
        try {
          ours = certificateExtensions(bytes);
        } catch (error) {
          expect(error).toBeInstanceOf(CertificateDerError);
          refused++;
          return;
        }
        let theirs: CertificateExtensions;
        try {
          theirs = byLibrary(bytes);
        } catch {
          return; // the library refuses what we read: stricter than us elsewhere in the certificate
        }
        expect(ours).toEqual(theirs);
      }),
      { numRuns: 600, seed: 15 },
    );
    expect(refused).toBeGreaterThan(0);
  });

  it('refuses truncated DER, BER indefinite lengths and lengths past their container', () => {
    for (const bytes of [[], [0x30], [0x30, 0x80, 0x00, 0x00], [0x30, 0x85, 1, 0, 0, 0, 0], [0x30, 0x03, 0x30, 0x05, 0x00], [0x30, 0x02, 0x1f, 0x00]]) {
      expect(() => certificateExtensions(Uint8Array.from(bytes))).toThrow(CertificateDerError);
    }
  });

  it('a leaf whose keyUsage cannot be read is refused for its key usage', async () => {
    // BIT STRING claiming 9 unused bits: OpenSSL loads the certificate (extensions stay opaque).
    const broken = new x509.Extension('2.5.29.15', true, Uint8Array.from([0x03, 0x02, 0x09, 0x80]));
    const der = await certWith([san([{ type: 'url', value: 'spiffe://example.org/ns/prod/sa/web' }]), broken]);
    let caught: unknown;
    try {
      leafSpiffeId(new X509Certificate(der));
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(SvidError);
    expect((caught as SvidError).rejection).toBe('key_usage');
    expect((caught as SvidError).message).toMatch(/unreadable extension \(keyUsage: bad unused-bits count\)/);
  });
});
