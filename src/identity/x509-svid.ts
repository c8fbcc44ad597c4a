// X509-SVID validation (SPIFFE X509-SVID standard, sections 2, 4 and 5): exactly one URI SAN
// that is a valid SPIFFE ID with a non-root path; a leaf that is not a CA and has digitalSignature
// but not keyCertSign or cRLSign; every certificate within its validity; at most 16 certificates
// (SPEC step 1); and a chain that verifies against the bundle of the trust domain named in the
// leaf's own SPIFFE ID, not merely against any trusted CA.
import { X509Certificate } from 'node:crypto';
import { CertificateDerError, certificateExtensions, KEY_USAGE, type CertificateExtensions } from './certificate-extensions.ts';
import { parseSpiffeId, type SpiffeId } from './spiffe-id.ts';
import type { TrustBundleSet } from './trust-bundle.ts';

/** Why a certificate is not an acceptable X509-SVID; also the `reason` label of handshake metrics. */
export type SvidRejection =
  | 'no_client_cert'
  | 'uri_san_count'
  | 'bad_spiffe_id'
  | 'leaf_is_ca'
  | 'key_usage'
  | 'expired'
  | 'not_yet_valid'
  | 'unknown_trust_domain'
  | 'untrusted_chain';

export class SvidError extends Error {
  override readonly name = 'SvidError';
  readonly rejection: SvidRejection;
  constructor(rejection: SvidRejection, message: string) {
    super(message);
    this.rejection = rejection;
  }
}

export interface X509Svid {
  readonly id: SpiffeId;
  /** Leaf first, then intermediates as presented. */
  readonly chain: readonly X509Certificate[];
  /** Lowercase hex SHA-256 of the leaf DER (XFCC `Hash=`). */
  readonly leafSha256Hex: string;
  /** base64url SHA-256 of the leaf DER (`cnf.x5t#S256`). */
  readonly leafSha256B64u: string;
  readonly notAfter: Date;
}

/** SPEC step 1: a presented chain (leaf and intermediates) holds at most 16 certificates. */
export const MAX_CHAIN_CERTIFICATES = 16;

/** Which rule an unreadable extension fails: the one that reads it (a leaf's SAN, CA flag, key usage; a signer's chain). */
function unreadable(part: CertificateDerError['part'], leaf: boolean): SvidRejection {
  if (part === 'keyUsage') return 'key_usage';
  if (!leaf) return 'untrusted_chain';
  return part === 'basicConstraints' ? 'leaf_is_ca' : 'uri_san_count';
}

/** The extensions the rules read, from the DER (certificate-extensions.ts); one that cannot be read refuses the certificate. */
function extensionsOf(cert: X509Certificate, what: string, leaf: boolean): CertificateExtensions {
  try {
    return certificateExtensions(cert.raw);
  } catch (error) {
    if (!(error instanceof CertificateDerError)) throw error;
    throw new SvidError(unreadable(error.part, leaf), `${what}: unreadable extension (${error.message})`);
  }
}

/** The leaf's own rules (SAN, SPIFFE ID, CA flag, key usage); no chain or time checks. */
export function leafSpiffeId(leaf: X509Certificate): SpiffeId {
  const extensions = extensionsOf(leaf, 'leaf certificate', true);
  const uris = extensions.uris;
  if (uris.length !== 1) throw new SvidError('uri_san_count', `X509-SVID must have exactly one URI SAN, found ${uris.length}`);
  let id: SpiffeId;
  try {
    id = parseSpiffeId(uris[0]!);
  } catch (error) {
    throw new SvidError('bad_spiffe_id', `URI SAN is not a valid SPIFFE ID: ${(error as Error).message}`);
  }
  // X509-SVID standard, 2: a workload's ID names a path; `spiffe://td` alone is the trust domain.
  if (id.path === '') throw new SvidError('bad_spiffe_id', `X509-SVID leaf SPIFFE ID must have a non-root path, got ${id.uri}`);
  if (leaf.ca || extensions.ca) throw new SvidError('leaf_is_ca', 'X509-SVID leaf must not be a CA (basicConstraints cA is true)');
  const usage = extensions.keyUsage;
  if (usage === undefined || (usage & KEY_USAGE.digitalSignature) === 0) {
    throw new SvidError('key_usage', 'X509-SVID leaf must have the digitalSignature key usage');
  }
  if ((usage & (KEY_USAGE.keyCertSign | KEY_USAGE.cRLSign)) !== 0) {
    throw new SvidError('key_usage', 'X509-SVID leaf must not have keyCertSign or cRLSign');
  }
  return id;
}

function checkValidity(cert: X509Certificate, now: number, what: string): void {
  if (now < Date.parse(cert.validFrom)) throw new SvidError('not_yet_valid', `${what} is not valid before ${cert.validFrom}`);
  if (now > Date.parse(cert.validTo)) throw new SvidError('expired', `${what} expired at ${cert.validTo}`);
}

function issuedBy(child: X509Certificate, parent: X509Certificate): boolean {
  return child.checkIssued(parent) && child.verify(parent.publicKey);
}

function checkChainLength(chain: readonly X509Certificate[]): void {
  if (chain.length > MAX_CHAIN_CERTIFICATES) {
    throw new SvidError('untrusted_chain', `chain has ${chain.length} certificates; an X509-SVID chain has at most ${MAX_CHAIN_CERTIFICATES}`);
  }
}

/**
 * The presented chain's own rules, with no bundle at hand (X509-SVID standard, 4.1 and 4.3, as
 * go-spiffe's x509svid parser applies them): at most 16 certificates; every certificate after the
 * leaf is a CA with keyCertSign; each certificate is issued by the one after it; every one is
 * within its validity. The leaf's own rules are leafSpiffeId's.
 */
export function checkPresentedChain(chain: readonly X509Certificate[], now = Date.now()): void {
  checkChainLength(chain);
  chain.forEach((cert, index) => {
    const what = index === 0 ? 'leaf certificate' : `chain[${index}]`;
    checkValidity(cert, now, what);
    if (index === 0) return;
    const extensions = extensionsOf(cert, what, false);
    if (!extensions.ca) throw new SvidError('untrusted_chain', `${what}: signing certificate must have CA flag set`);
    const usage = extensions.keyUsage;
    if (usage === undefined || (usage & KEY_USAGE.keyCertSign) === 0) throw new SvidError('key_usage', `${what}: signing certificate must have 'keyCertSign' set as key usage`);
    if (!issuedBy(chain[index - 1]!, cert)) throw new SvidError('untrusted_chain', `${index === 1 ? 'leaf' : `chain[${index - 1}]`} is not issued by ${what} (each certificate must be signed by the next)`);
  });
}

export interface VerifyOptions {
  /**
   * The TLS stack already verified the whole presented path against `bundles.tlsRoots()` (roots
   * name-constrained to their trust domains), but only the leaf is visible here: Node does not
   * expose a client's intermediates on the server side, nor any chain on a resumed session.
   */
  readonly pathVerifiedByTls?: boolean;
}

function svidOf(id: SpiffeId, chain: readonly X509Certificate[], leaf: X509Certificate): X509Svid {
  const hex = leaf.fingerprint256.replaceAll(':', '');
  return {
    id,
    chain,
    leafSha256Hex: hex.toLowerCase(),
    leafSha256B64u: Buffer.from(hex, 'hex').toString('base64url'),
    notAfter: new Date(leaf.validTo),
  };
}

/** Validates a presented chain (leaf first) as an X509-SVID of an accepted trust domain. */
export function verifyX509Svid(chain: readonly X509Certificate[], bundles: TrustBundleSet, now = Date.now(), options: VerifyOptions = {}): X509Svid {
  const leaf = chain[0];
  if (!leaf) throw new SvidError('no_client_cert', 'no certificate was presented');
  checkChainLength(chain);
  const id = leafSpiffeId(leaf);
  const roots = bundles.rootsFor(id.trustDomain);
  if (!roots) throw new SvidError('unknown_trust_domain', `trust domain "${id.trustDomain}" is not trusted`);
  checkValidity(leaf, now, 'leaf certificate');
  // Walk up from the leaf: stop at a root of this trust domain's bundle; otherwise step to a
  // presented intermediate CA that signed the current certificate.
  let current = leaf;
  for (let depth = 0; depth < chain.length; depth++) {
    const root = roots.find((candidate) => issuedBy(current, candidate));
    if (root) {
      checkValidity(root, now, 'trust bundle certificate');
      return svidOf(id, chain, leaf);
    }
    const parent = chain.slice(1).find((candidate) => candidate !== current && candidate.ca && issuedBy(current, candidate));
    if (!parent) break;
    checkValidity(parent, now, 'intermediate certificate');
    current = parent;
  }
  // Intermediates we cannot see: the TLS stack's verdict stands only if it binds the chain to this
  // trust domain's bundle (every root it could end at is this domain's or constrained to its own).
  if (options.pathVerifiedByTls && chain.length === 1 && bundles.tlsBindsDomain(id.trustDomain)) {
    // A leaf signed directly by a root of another trust domain needs no intermediate to be caught.
    const own = new Set(roots.map((root) => root.fingerprint256));
    const foreign = bundles.allRoots().some((root) => !own.has(root.fingerprint256) && issuedBy(leaf, root));
    if (!foreign) return svidOf(id, chain, leaf);
  }
  throw new SvidError('untrusted_chain', `chain does not verify against the bundle of trust domain "${id.trustDomain}"`);
}

/** Splits a PEM file into certificates, in file order. */
export function parsePemCertificates(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((block) => new X509Certificate(block));
}
