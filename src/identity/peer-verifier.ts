// Per-connection peer identity: the X509-SVID rules (`identity.allow` is the current config
// generation's, checked per request by ClientConnection). Results are cached by
// leaf fingerprint and bundle generation so a reconnecting workload costs one hash lookup, while
// validity is still checked against the clock on every connection (resumed sessions included).
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { LRUCache } from 'lru-cache';
import { MAX_CHAIN_CERTIFICATES, SvidError, verifyX509Svid, type X509Svid } from './x509-svid.ts';
import type { TrustBundleSet } from './trust-bundle.ts';

export interface PeerIdentity {
  readonly svid: X509Svid;
}

/**
 * The presented chain, leaf first, as Node exposes it after the handshake; one certificate past
 * MAX_CHAIN_CERTIFICATES at most, enough for verifyX509Svid to refuse it.
 */
export function presentedChain(socket: TLSSocket): X509Certificate[] {
  const chain: X509Certificate[] = [];
  let cert: PeerCertificate | undefined = socket.getPeerCertificate(true) as PeerCertificate & { issuerCertificate?: PeerCertificate };
  const seen = new Set<string>();
  while (cert && cert.raw && !seen.has(cert.fingerprint256) && chain.length <= MAX_CHAIN_CERTIFICATES) {
    seen.add(cert.fingerprint256);
    chain.push(new X509Certificate(cert.raw));
    cert = (cert as PeerCertificate & { issuerCertificate?: PeerCertificate }).issuerCertificate;
  }
  return chain;
}

/** The TLS stack's verdict on the peer's chain (`authorizationError`) as a rejection. */
function tlsRefusal(socket: TLSSocket): SvidError {
  const code = String(socket.authorizationError ?? 'UNKNOWN');
  const rejection = code === 'CERT_HAS_EXPIRED' ? 'expired' : code === 'CERT_NOT_YET_VALID' ? 'not_yet_valid' : 'untrusted_chain';
  // PATH_LENGTH_EXCEEDED: more intermediates than the bundle roots' pathLenConstraint (trust-bundle.ts) allows.
  const hint = code === 'PATH_LENGTH_EXCEEDED' ? `: more than ${MAX_CHAIN_CERTIFICATES} certificates` : '';
  return new SvidError(rejection, `the TLS stack refused the peer's chain (${code}${hint})`);
}

/**
 * Verified SVIDs by leaf fingerprint, one cache per bundle set: a new `identity.allow` keeps it
 * (the SVID rules do not depend on it), a new bundle starts afresh.
 */
const caches = new WeakMap<TrustBundleSet, LRUCache<string, X509Svid>>();

function cacheFor(bundles: TrustBundleSet): LRUCache<string, X509Svid> {
  let cache = caches.get(bundles);
  if (!cache) {
    cache = new LRUCache<string, X509Svid>({ max: 4096 });
    caches.set(bundles, cache);
  }
  return cache;
}

export class PeerVerifier {
  private readonly bundles: TrustBundleSet;
  private readonly cache: LRUCache<string, X509Svid>;

  constructor(bundles: TrustBundleSet) {
    this.bundles = bundles;
    this.cache = cacheFor(bundles);
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
      // The SPIFFE rules first, for a precise reason; the TLS stack's own verdict below.
      try {
        // The TLS stack's verdict on a resumed session dates from the original handshake, perhaps
        // under an older bundle (ticket keys rotate with the bundle, but do not rely on it alone):
        // only a full handshake under this bundle set may vouch for intermediates we cannot see.
        const pathVerifiedByTls = socket.authorized && !socket.isSessionReused();
        svid = verifyX509Svid(presentedChain(socket), this.bundles, now, { pathVerifiedByTls });
      } catch (error) {
        // A chain we could not walk (its intermediates are not visible here): the TLS stack, which
        // saw them, knows better why (an expired intermediate, say).
        if (error instanceof SvidError && error.rejection === 'untrusted_chain' && !socket.authorized) throw tlsRefusal(socket);
        throw error;
      }
    }
    // The TLS stack checks what the SPIFFE rules above may not see (the intermediates it was sent,
    // name constraints, signature algorithms): its refusal always stands.
    if (!socket.authorized) throw tlsRefusal(socket);
    this.cache.set(leaf.fingerprint256, svid);
    return { svid };
  }
}
