// A throwaway PKI for the demo and the tests: a CA per trust domain and X509-SVIDs signed by it,
// with knobs to make each kind of invalid SVID. Never for production keys.
import { webcrypto } from 'node:crypto';
import 'reflect-metadata'; // @peculiar/x509 needs it loaded first
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const HOUR = 3_600_000;

export interface Issued {
  readonly certPem: string;
  readonly keyPem: string;
  readonly cert: x509.X509Certificate;
  readonly keys: webcrypto.CryptoKeyPair;
}

export interface CertOptions {
  /** URI SANs; an SVID has exactly one. */
  readonly uris?: readonly string[];
  readonly dns?: readonly string[];
  readonly ca?: boolean;
  readonly keyUsages?: number;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  readonly subject?: string;
}

let serial = 1;

async function pem(keys: webcrypto.CryptoKeyPair): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey as webcrypto.CryptoKey);
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN PRIVATE KEY-----\n${b64}\n-----END PRIVATE KEY-----\n`;
}

export async function generateKeys(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as unknown as webcrypto.CryptoKeyPair;
}

async function issue(options: CertOptions, issuer: Issued | undefined): Promise<Issued> {
  const keys = await generateKeys();
  const now = Date.now();
  const ca = options.ca ?? false;
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(ca, undefined, true),
    new x509.KeyUsagesExtension(options.keyUsages ?? (ca ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign : x509.KeyUsageFlags.digitalSignature), true),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  const names = [...(options.uris ?? []).map((value) => ({ type: 'url' as const, value })), ...(options.dns ?? []).map((value) => ({ type: 'dns' as const, value }))];
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names, false));
  if (issuer) extensions.push(await x509.AuthorityKeyIdentifierExtension.create(issuer.cert, false));
  if (!ca) extensions.push(new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]));
  const subject = options.subject ?? (ca ? 'CN=Portcullis dev CA' : 'O=SPIFFE');
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: (serial++).toString(16).padStart(2, '0') + Date.now().toString(16),
    subject,
    issuer: issuer ? issuer.cert.subject : subject,
    notBefore: options.notBefore ?? new Date(now - 60_000),
    notAfter: options.notAfter ?? new Date(now + 24 * HOUR),
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: issuer ? issuer.keys.privateKey : keys.privateKey,
    extensions,
  });
  return { cert, keys, certPem: cert.toString('pem') + '\n', keyPem: await pem(keys) };
}

export class DevCa {
  readonly trustDomain: string;
  readonly root: Issued;

  private constructor(trustDomain: string, root: Issued) {
    this.trustDomain = trustDomain;
    this.root = root;
  }

  static async create(trustDomain: string, options: CertOptions = {}): Promise<DevCa> {
    return new DevCa(trustDomain, await issue({ subject: `CN=${trustDomain} dev CA,O=Portcullis`, ...options, ca: true }, undefined));
  }

  get bundlePem(): string {
    return this.root.certPem;
  }

  /** An intermediate CA signed by this root, or by `signer` (another intermediate), for chain tests. */
  async intermediate(options: CertOptions = {}, signer: Issued = this.root): Promise<Issued> {
    return issue({ subject: `CN=${this.trustDomain} intermediate,O=Portcullis`, ...options, ca: options.ca ?? true }, signer);
  }

  /** An X509-SVID for `spiffe://<trust domain><path>`, or with any SAN and flags from options. */
  async svid(path: string, options: CertOptions = {}, signer: Issued = this.root): Promise<Issued> {
    return issue({ uris: [`spiffe://${this.trustDomain}${path}`], ...options }, signer);
  }
}

export { x509 };

/** A grant or posture issuer's signing key (P-256, ES256) and the JWKS a config names for it. */
export interface IssuerKeyPair {
  readonly kid: string;
  readonly privateKeyPem: string;
  readonly jwks: string;
}

export async function issuerKeyPair(kid: string): Promise<IssuerKeyPair> {
  const keys = await generateKeys();
  const jwk = { ...(await webcrypto.subtle.exportKey('jwk', keys.publicKey as webcrypto.CryptoKey)), kid, alg: 'ES256', use: 'sig' };
  delete (jwk as { key_ops?: unknown }).key_ops;
  delete (jwk as { ext?: unknown }).ext;
  return { kid, privateKeyPem: await pem(keys), jwks: `${JSON.stringify({ keys: [jwk] }, null, 2)}\n` };
}
