// The three X.509 v3 extensions the X509-SVID rules read (RFC 5280 4.2.1.3 keyUsage, 4.2.1.6
// subjectAltName, 4.2.1.9 basicConstraints), read from the certificate's DER. Node's
// X509Certificate gives the SAN only as display text (escaped, comma-joined) and `keyUsage` is
// the *extended* key usage there, so the bits come from the DER. This reader replaces
// @peculiar/x509 (with tsyringe and reflect-metadata: ~20 MiB of RSS and ~100 ms at start) on the
// run path. It is given only certificates OpenSSL has already parsed, and it is still strict:
// every length is checked against its parent, and anything it cannot read is a CertificateDerError
// (the caller refuses the certificate; it never guesses).

/** The certificate's DER could not be read where this reader looked. */
export class CertificateDerError extends Error {
  override readonly name = 'CertificateDerError';
  /** The extension being read ('certificate' for the structure around them). */
  readonly part: 'certificate' | 'subjectAltName' | 'basicConstraints' | 'keyUsage';
  constructor(part: CertificateDerError['part'], message: string) {
    super(`${part}: ${message}`);
    this.part = part;
  }
}

/** keyUsage bits as RFC 5280 numbers them: bit n is `1 << n` (the values @peculiar/x509 uses). */
export const KEY_USAGE = { digitalSignature: 1, keyCertSign: 1 << 5, cRLSign: 1 << 6 } as const;

export interface CertificateExtensions {
  /** The SAN's uniformResourceIdentifier names in order; empty when there is no SAN. */
  readonly uris: readonly string[];
  /** basicConstraints cA; false when the extension is absent (its DEFAULT). */
  readonly ca: boolean;
  /** keyUsage bits (KEY_USAGE), or undefined when the extension is absent. */
  readonly keyUsage: number | undefined;
}

interface Tlv {
  readonly tag: number;
  /** First byte of the contents. */
  readonly start: number;
  /** One past the last byte of the contents. */
  readonly end: number;
}

const SEQUENCE = 0x30;
const BOOLEAN = 0x01;
const BIT_STRING = 0x03;
const OCTET_STRING = 0x04;
const OID = 0x06;
/** TBSCertificate's `[3] EXPLICIT Extensions`. */
const EXTENSIONS = 0xa3;
/** GeneralName's `[6] IMPLICIT IA5String` (uniformResourceIdentifier). */
const URI_NAME = 0x86;
// The DER contents of the OIDs 2.5.29.17, 2.5.29.19 and 2.5.29.15.
const OID_SAN = '551d11';
const OID_BASIC_CONSTRAINTS = '551d13';
const OID_KEY_USAGE = '551d0f';

/** One TLV at `offset`, which must end by `limit`. DER only: definite lengths, low tag numbers. */
function tlv(der: Uint8Array, offset: number, limit: number, part: CertificateDerError['part']): Tlv {
  if (offset + 2 > limit) throw new CertificateDerError(part, 'truncated');
  const tag = der[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new CertificateDerError(part, 'high tag numbers are not used in certificates');
  let length = der[offset + 1]!;
  let start = offset + 2;
  if (length & 0x80) {
    const bytes = length & 0x7f;
    // 0x80 is BER's indefinite length; more than 4 length bytes is larger than any certificate.
    if (bytes === 0 || bytes > 4 || start + bytes > limit) throw new CertificateDerError(part, 'bad length');
    length = 0;
    for (let i = 0; i < bytes; i++) length = length * 256 + der[start + i]!;
    start += bytes;
  }
  if (start + length > limit) throw new CertificateDerError(part, 'length runs past its container');
  return { tag, start, end: start + length };
}

function children(der: Uint8Array, parent: Tlv, part: CertificateDerError['part']): Tlv[] {
  const out: Tlv[] = [];
  for (let offset = parent.start; offset < parent.end; ) {
    const child = tlv(der, offset, parent.end, part);
    out.push(child);
    offset = child.end;
  }
  return out;
}

function must(node: Tlv | undefined, tag: number, part: CertificateDerError['part'], what: string): Tlv {
  if (!node || node.tag !== tag) throw new CertificateDerError(part, `expected ${what}`);
  return node;
}

function hex(der: Uint8Array, node: Tlv): string {
  return Buffer.from(der.buffer, der.byteOffset + node.start, node.end - node.start).toString('hex');
}

function sanUris(der: Uint8Array, value: Tlv): string[] {
  const names = must(tlv(der, value.start, value.end, 'subjectAltName'), SEQUENCE, 'subjectAltName', 'GeneralNames');
  return children(der, names, 'subjectAltName')
    .filter((name) => name.tag === URI_NAME)
    .map((name) => Buffer.from(der.buffer, der.byteOffset + name.start, name.end - name.start).toString('latin1'));
}

function basicCa(der: Uint8Array, value: Tlv): boolean {
  const constraints = must(tlv(der, value.start, value.end, 'basicConstraints'), SEQUENCE, 'basicConstraints', 'BasicConstraints');
  const first = children(der, constraints, 'basicConstraints')[0];
  if (!first || first.tag !== BOOLEAN) return false; // cA absent: its DEFAULT FALSE
  if (first.end - first.start !== 1) throw new CertificateDerError('basicConstraints', 'cA is not a one-byte BOOLEAN');
  return der[first.start] !== 0;
}

function keyUsageBits(der: Uint8Array, value: Tlv): number {
  const bits = must(tlv(der, value.start, value.end, 'keyUsage'), BIT_STRING, 'keyUsage', 'BIT STRING');
  const length = bits.end - bits.start;
  if (length < 1) throw new CertificateDerError('keyUsage', 'empty BIT STRING');
  const unused = der[bits.start]!;
  if (unused > 7 || (length === 1 && unused !== 0)) throw new CertificateDerError('keyUsage', 'bad unused-bits count');
  const total = (length - 1) * 8 - unused;
  let flags = 0;
  // Nine named bits (digitalSignature … decipherOnly); later ones have no name and no meaning here.
  for (let n = 0; n < Math.min(total, 9); n++) {
    if (der[bits.start + 1 + (n >> 3)]! & (0x80 >> (n & 7))) flags |= 1 << n;
  }
  return flags;
}

/**
 * Reads the SAN URIs, basicConstraints cA and keyUsage of a certificate (`X509Certificate.raw`).
 * The first extension of each kind counts (OpenSSL refuses to verify a certificate that repeats one).
 */
export function certificateExtensions(der: Uint8Array): CertificateExtensions {
  const cert = must(tlv(der, 0, der.length, 'certificate'), SEQUENCE, 'certificate', 'Certificate');
  const tbs = must(children(der, cert, 'certificate')[0], SEQUENCE, 'certificate', 'TBSCertificate');
  const wrapper = children(der, tbs, 'certificate').find((field) => field.tag === EXTENSIONS);
  const found: CertificateExtensions = { uris: [], ca: false, keyUsage: undefined };
  if (!wrapper) return found;
  const list = must(tlv(der, wrapper.start, wrapper.end, 'certificate'), SEQUENCE, 'certificate', 'Extensions');
  let uris: string[] | undefined;
  let ca: boolean | undefined;
  let keyUsage: number | undefined;
  for (const extension of children(der, list, 'certificate')) {
    must(extension, SEQUENCE, 'certificate', 'Extension');
    const [id, second, third] = children(der, extension, 'certificate');
    const oid = hex(der, must(id, OID, 'certificate', 'extnID'));
    // critical BOOLEAN DEFAULT FALSE may be absent; extnValue is the OCTET STRING either way.
    const value = must(second?.tag === BOOLEAN ? third : second, OCTET_STRING, 'certificate', 'extnValue');
    if (oid === OID_SAN && uris === undefined) uris = sanUris(der, value);
    else if (oid === OID_BASIC_CONSTRAINTS && ca === undefined) ca = basicCa(der, value);
    else if (oid === OID_KEY_USAGE && keyUsage === undefined) keyUsage = keyUsageBits(der, value);
  }
  return { uris: uris ?? found.uris, ca: ca ?? false, keyUsage };
}
