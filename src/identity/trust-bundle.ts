// Trust bundles per trust domain (SPIFFE Trust Domain and Bundle): a peer's chain must end at a
// CA of the bundle of the trust domain in its own SPIFFE ID, so bundles are kept per domain.
//
// The TLS stack verifies the presented chain (intermediates included) but Node does not expose,
// on the server side, the intermediates a client sent, nor the root the chain ended at. So the
// roots handed to the TLS stack carry a URI name constraint naming the trust domain(s) whose
// bundle lists them: OpenSSL then refuses a chain ending at partner.org's CA for a leaf that
// claims spiffe://example.org/..., however many intermediates sit in between. The constraint is
// added to a copy of the root's TBSCertificate; OpenSSL never checks a trust anchor's own
// self-signature (X509_V_FLAG_CHECK_SS_SIGNATURE is off), so the copy anchors as the original.
// For the same reason the copy's basicConstraints carry a pathLenConstraint of at most 15: SPEC
// step 1 allows a chain of 16 certificates (leaf and 15 intermediates), and Node neither shows
// the intermediates nor lets us set OpenSSL's verify depth (default 100); OpenSSL enforces a
// trust anchor's path length (X509_V_ERR_PATH_LENGTH_EXCEEDED).
import { X509Certificate } from 'node:crypto';

/** DER of OID 2.5.29.30 (id-ce-nameConstraints). */
const NAME_CONSTRAINTS_OID = Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x1e]);
/** DER of OID 2.5.29.19 (id-ce-basicConstraints). */
const BASIC_CONSTRAINTS_OID = Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x13]);
/** Intermediates below a root: 16 certificates in all, leaf included (SPEC step 1). */
export const MAX_INTERMEDIATES = 15;

interface Tlv {
  readonly tag: number;
  /** Offset of the content within the buffer it was read from. */
  readonly start: number;
  readonly end: number;
}

function readTlv(der: Buffer, offset: number): Tlv {
  const tag = der[offset]!;
  let length = der[offset + 1]!;
  let start = offset + 2;
  if (length & 0x80) {
    const bytes = length & 0x7f;
    if (bytes === 0 || bytes > 4) throw new Error('unsupported DER length');
    length = 0;
    for (let i = 0; i < bytes; i++) length = length * 256 + der[start + i]!;
    start += bytes;
  }
  if (start + length > der.length) throw new Error('truncated DER');
  return { tag, start, end: start + length };
}

function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  let header: number[];
  if (n < 0x80) header = [tag, n];
  else if (n < 0x100) header = [tag, 0x81, n];
  else if (n < 0x10000) header = [tag, 0x82, n >> 8, n & 0xff];
  else header = [tag, 0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return Buffer.concat([Buffer.from(header), content]);
}

/**
 * A basicConstraints extension (DER, `start`..`end`) with its pathLenConstraint lowered to
 * MAX_INTERMEDIATES; unchanged when it says "not a CA" (OpenSSL will not anchor on it anyway) or
 * already allows no more.
 */
function limitPathLength(der: Buffer, start: number, end: number): Buffer {
  const original = der.subarray(start, end);
  const extension = readTlv(der, start);
  const oid = readTlv(der, extension.start);
  let offset = oid.end;
  let critical: Buffer = Buffer.alloc(0);
  let element = readTlv(der, offset);
  if (element.tag === 0x01) {
    critical = der.subarray(offset, element.end);
    offset = element.end;
    element = readTlv(der, offset);
  }
  if (element.tag !== 0x04) return original;
  const constraints = readTlv(der, element.start);
  let ca = false;
  let pathLen: number | undefined;
  for (let at = constraints.start; at < constraints.end; ) {
    const field = readTlv(der, at);
    if (field.tag === 0x01) ca = der[field.start] !== 0;
    if (field.tag === 0x02) pathLen = field.end - field.start > 2 ? Infinity : der.readUIntBE(field.start, field.end - field.start);
    at = field.end;
  }
  if (!ca || (pathLen !== undefined && pathLen <= MAX_INTERMEDIATES)) return original;
  const value = tlv(0x30, Buffer.concat([Buffer.from([0x01, 0x01, 0xff]), Buffer.from([0x02, 0x01, MAX_INTERMEDIATES])]));
  return tlv(0x30, Buffer.concat([BASIC_CONSTRAINTS_OID, critical, tlv(0x04, value)]));
}

export interface TlsRoot {
  readonly cert: X509Certificate;
  /** Whether the copy binds URIs below it to its trust domains (false: it had name constraints of its own). */
  readonly nameConstrained: boolean;
}

/**
 * A copy of `root` whose extensions also say "URIs below me must name one of `trustDomains` as
 * host" (critical nameConstraints, permittedSubtrees of uniformResourceIdentifier) and "at most
 * MAX_INTERMEDIATES CAs below me". A root with name constraints of its own keeps them (only its
 * path length is limited). Undefined when the root has no v3 extensions to amend.
 */
export function constrainRoot(root: X509Certificate, trustDomains: readonly string[]): TlsRoot | undefined {
  const der = Buffer.from(root.raw);
  const cert = readTlv(der, 0);
  const tbs = readTlv(der, cert.start);
  const afterTbs = der.subarray(tbs.end, cert.end); // signatureAlgorithm, signatureValue
  // Walk the TBSCertificate's elements to the [3] EXPLICIT extensions.
  const parts: Buffer[] = [];
  let extensions: Tlv | undefined;
  for (let offset = tbs.start; offset < tbs.end; ) {
    const element = readTlv(der, offset);
    if (element.tag === 0xa3) extensions = element;
    else parts.push(der.subarray(offset, element.end));
    offset = element.end;
  }
  if (!extensions) return undefined;
  const list = readTlv(der, extensions.start);
  const existing: Buffer[] = [];
  let hasNameConstraints = false;
  for (let offset = list.start; offset < list.end; ) {
    const extension = readTlv(der, offset);
    const oid = der.subarray(extension.start, readTlv(der, extension.start).end);
    if (oid.equals(NAME_CONSTRAINTS_OID)) hasNameConstraints = true;
    existing.push(oid.equals(BASIC_CONSTRAINTS_OID) ? limitPathLength(der, offset, extension.end) : der.subarray(offset, extension.end));
    offset = extension.end;
  }
  if (!hasNameConstraints) {
    const subtrees = trustDomains.map((domain) => tlv(0x30, tlv(0x86, Buffer.from(domain, 'ascii'))));
    const nameConstraints = tlv(0x30, tlv(0xa0, Buffer.concat(subtrees)));
    existing.push(tlv(0x30, Buffer.concat([NAME_CONSTRAINTS_OID, Buffer.from([0x01, 0x01, 0xff]), tlv(0x04, nameConstraints)])));
  }
  const newExtensions = tlv(0xa3, tlv(0x30, Buffer.concat(existing)));
  const newTbs = tlv(0x30, Buffer.concat([...parts, newExtensions]));
  return { cert: new X509Certificate(tlv(0x30, Buffer.concat([newTbs, afterTbs]))), nameConstrained: !hasNameConstraints };
}

export class TrustBundleSet {
  private readonly byDomain: ReadonlyMap<string, readonly X509Certificate[]>;
  /** Changes whenever any bundle changes; keys identity caches and TLS ticket rotation. */
  readonly fingerprint: string;
  private tls: { readonly pems: string[]; readonly unconstrained: ReadonlySet<string> } | undefined;

  constructor(byDomain: ReadonlyMap<string, readonly X509Certificate[]>) {
    this.byDomain = byDomain;
    this.fingerprint = [...byDomain.entries()]
      .map(([domain, certs]) => `${domain}=${certs.map((c) => c.fingerprint256).join(',')}`)
      .sort()
      .join(';');
  }

  rootsFor(trustDomain: string): readonly X509Certificate[] | undefined {
    return this.byDomain.get(trustDomain);
  }

  domains(): string[] {
    return [...this.byDomain.keys()];
  }

  /** Every CA certificate, deduplicated: what the bundles list. */
  allRoots(): X509Certificate[] {
    const seen = new Map<string, X509Certificate>();
    for (const certs of this.byDomain.values()) for (const cert of certs) seen.set(cert.fingerprint256, cert);
    return [...seen.values()];
  }

  private tlsRootsBuilt() {
    if (this.tls) return this.tls;
    const domainsOf = new Map<string, { cert: X509Certificate; domains: string[] }>();
    for (const [domain, certs] of this.byDomain) {
      for (const cert of certs) {
        const entry = domainsOf.get(cert.fingerprint256) ?? { cert, domains: [] };
        entry.domains.push(domain);
        domainsOf.set(cert.fingerprint256, entry);
      }
    }
    const pems: string[] = [];
    const unconstrained = new Set<string>();
    for (const [fingerprint, { cert, domains }] of domainsOf) {
      let constrained: TlsRoot | undefined;
      try {
        constrained = constrainRoot(cert, domains);
      } catch {
        constrained = undefined;
      }
      if (!constrained?.nameConstrained) unconstrained.add(fingerprint);
      pems.push((constrained?.cert ?? cert).toString());
    }
    this.tls = { pems, unconstrained };
    return this.tls;
  }

  /** The CA certificates the TLS stack is told to trust: each bound to its trust domain(s). */
  tlsRoots(): string[] {
    return this.tlsRootsBuilt().pems;
  }

  /**
   * Whether the TLS stack's verdict alone proves a chain ends at a CA of `trustDomain`'s bundle:
   * every root it trusts is either in that bundle or name-constrained to its own trust domains.
   */
  tlsBindsDomain(trustDomain: string): boolean {
    const own = new Set((this.byDomain.get(trustDomain) ?? []).map((cert) => cert.fingerprint256));
    if (own.size === 0) return false;
    for (const fingerprint of this.tlsRootsBuilt().unconstrained) if (!own.has(fingerprint)) return false;
    return true;
  }
}
