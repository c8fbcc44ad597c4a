// Per-connection peer identity: the X509-SVID rules plus `identity.allow`. Results are cached by
// leaf fingerprint and bundle generation so a reconnecting workload costs one hash lookup, while
// validity is still checked against the clock on every connection (resumed sessions included).
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { LRUCache } from 'lru-cache';
import { SvidError, verifyX509Svid, type X509Svid } from './x509-svid.ts';
import type { TrustBundleSet } from './trust-bundle.ts';
import { compileSpiffePatterns, type SpiffePatternSet } from './spiffe-pattern.ts';

export interface PeerIdentity {
  readonly svid: X509Svid;
  /** Whether `identity.allow` admits this peer; a peer that is a valid SVID but not allowed gets 403. */
  readonly allowed: boolean;
}

/** The presented chain, leaf first, as Node exposes it after the handshake. */
export function presentedChain(socket: TLSSocket): X509Certificate[] {
  const chain: X509Certificate[] = [];
  let cert: PeerCertificate | undefined = socket.getPeerCertificate(true) as PeerCertificate & { issuerCertificate?: PeerCertificate };
  const seen = new Set<string>();
  while (cert && cert.raw && !seen.has(cert.fingerprint256)) {
    seen.add(cert.fingerprint256);
    chain.push(new X509Certificate(cert.raw));
    cert = (cert as PeerCertificate & { issuerCertificate?: PeerCertificate }).issuerCertificate;
  }
  return chain;
}

export class PeerVerifier {
  private readonly bundles: TrustBundleSet;
  private readonly allow: SpiffePatternSet;
  private readonly cache = new LRUCache<string, X509Svid>({ max: 4096 });

  constructor(bundles: TrustBundleSet, allow: readonly string[]) {
    this.bundles = bundles;
    this.allow = compileSpiffePatterns(allow);
  }

  /** Throws SvidError when the socket's peer is not a valid X509-SVID of a trusted domain. */
  verify(socket: TLSSocket, now = Date.now()): PeerIdentity {
    const leaf = socket.getPeerX509Certificate();
    if (!leaf) throw new SvidError('no_client_cert', 'no client certificate was presented');
    let svid = this.cache.get(leaf.fingerprint256);
    if (svid) {
      // Cached chain checks still hold; time does not stand still for a resumed session.
      if (now > svid.notAfter.getTime()) throw new SvidError('expired', `leaf certificate expired at ${svid.notAfter.toISOString()}`);
      for (const cert of svid.chain) if (now > Date.parse(cert.validTo)) svid = undefined;
    }
    if (!svid) {
      svid = verifyX509Svid(presentedChain(socket), this.bundles, now);
      this.cache.set(leaf.fingerprint256, svid);
    }
    return { svid, allowed: this.allow.matches(svid.id.uri) };
  }
}
