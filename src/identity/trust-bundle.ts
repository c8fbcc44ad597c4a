// Trust bundles per trust domain (SPIFFE Trust Domain and Bundle): a peer's chain must end at a
// CA of the bundle of the trust domain in its own SPIFFE ID, so bundles are kept per domain.
import type { X509Certificate } from 'node:crypto';

export class TrustBundleSet {
  private readonly byDomain: ReadonlyMap<string, readonly X509Certificate[]>;
  /** Changes whenever any bundle changes; keys identity caches and TLS ticket rotation. */
  readonly fingerprint: string;

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

  /** Every CA certificate, deduplicated: what the TLS stack is told to trust. */
  allRoots(): X509Certificate[] {
    const seen = new Map<string, X509Certificate>();
    for (const certs of this.byDomain.values()) for (const cert of certs) seen.set(cert.fingerprint256, cert);
    return [...seen.values()];
  }
}
