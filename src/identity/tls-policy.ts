// The listener's TLS policy (SPEC "The decision, per request", step 1): TLS 1.2 and 1.3 only;
// TLS 1.2 with ECDHE key exchange and AEAD ciphers only (forward secrecy, no CBC padding
// oracles, no CCM or ARIA that clients barely use, no static RSA key exchange); TLS 1.3's own
// suites, all AEAD, as OpenSSL orders them; no renegotiation, which TLS 1.3 removed and which on
// TLS 1.2 lets a client make the server redo handshakes at will (CVE-2011-1473) or change the
// peer under a connection whose identity was computed once.
import type { TLSSocket } from 'node:tls';

/** TLS 1.3 suites (names starting TLS_: Node hands them to SSL_CTX_set_ciphersuites), OpenSSL's default order. */
const TLS13_SUITES = ['TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256'];

/** TLS 1.2: ECDHE with AES-GCM or ChaCha20-Poly1305, for ECDSA and RSA SVIDs; Mozilla's "intermediate" order. */
const TLS12_SUITES = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
];

export const TLS_POLICY = {
  minVersion: 'TLSv1.2' as const,
  // Both lists in one string: Node splits the TLS_ names off for TLS 1.3; leaving them out
  // would switch TLS 1.3 off.
  ciphers: [...TLS13_SUITES, ...TLS12_SUITES].join(':'),
  honorCipherOrder: true,
};

/**
 * Refuses renegotiation on one connection: Node cuts it at the renegotiation's first message.
 * (OpenSSL's SSL_OP_NO_RENEGOTIATION would answer with a warning alert and leave the client
 * waiting on an open connection.)
 */
export function refuseRenegotiation(socket: TLSSocket): void {
  socket.disableRenegotiation();
}
