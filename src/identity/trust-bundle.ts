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
import { X509Certificate } from 'node:crypto';

/** DER of OID 2.5.29.30 (id-ce-nameConstraints). */
const NAME_CONSTRAINTS_OID = Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x1e]);

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
 * A copy of `root` whose extensions also say "URIs below me must name one of `trustDomains` as
 * host" (critical nameConstraints, permittedSubtrees of uniformResourceIdentifier). Undefined when
 * the root cannot be constrained this way (it already has name constraints, or no v3 extensions).
 */
export function constrainRoot(root: X509Certificate, trustDomains: readonly string[]): X509Certificate | undefined {
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
  for (let offset = list.start; offset < list.end; ) {
    const extension = readTlv(der, offset);
    const oid = readTlv(der, extension.start);
    if (der.subarray(extension.start, oid.end).equals(NAME_CONSTRAINTS_OID)) return undefined;
    existing.push(der.subarray(offset, extension.end));
    offset = extension.end;
  }
  const subtrees = trustDomains.map((domain) => tlv(0x30, tlv(0x86, Buffer.from(domain, 'ascii'))));
  const nameConstraints = tlv(0x30, tlv(0xa0, Buffer.concat(subtrees)));
  const extension = tlv(0x30, Buffer.concat([NAME_CONSTRAINTS_OID, Buffer.from([0x01, 0x01, 0xff]), tlv(0x04, nameConstraints)]));
  const newExtensions = tlv(0xa3, tlv(0x30, Buffer.concat([...existing, extension])));
  const newTbs = tlv(0x30, Buffer.concat([...parts, newExtensions]));
  return new X509Certificate(tlv(0x30, Buffer.concat([newTbs, afterTbs])));
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
      let constrained: X509Certificate | undefined;
      try {
        constrained = constrainRoot(cert, domains);
      } catch {
        constrained = undefined;
      }
      if (!constrained) unconstrained.add(fingerprint);
      pems.push((constrained ?? cert).toString());
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
