// SPIFFE-ID rules (SPIFFE standard, "SPIFFE ID"): scheme `spiffe`, a trust domain of
// lowercase letters, digits, `.`, `-`, `_`; a path of segments from [A-Za-z0-9.-_], none empty,
// `.` or `..`; no percent-encoding, query, fragment, port or userinfo; at most 2048 bytes, the
// trust domain at most 255 (a DNS name's limit: SPIFFE ID standard, 2.1).
export interface SpiffeId {
  readonly trustDomain: string;
  readonly path: string;
  /** The canonical `spiffe://td/path` form. */
  readonly uri: string;
}

export class SpiffeIdError extends Error {
  override readonly name = 'SpiffeIdError';
}

const SCHEME = 'spiffe://';
const MAX_LENGTH = 2048;
const MAX_TRUST_DOMAIN_LENGTH = 255;

function isTrustDomainChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x2d || c === 0x5f;
}

function isPathChar(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) ||
    c === 0x2e || c === 0x2d || c === 0x5f
  );
}

export function parseTrustDomain(name: string): string {
  if (name.length === 0) throw new SpiffeIdError('trust domain is missing');
  // Checked before the characters, so the message for a long name is about its length; every
  // valid character is one byte, so length in UTF-16 units bounds bytes too.
  if (name.length > MAX_TRUST_DOMAIN_LENGTH) throw new SpiffeIdError(`trust domain is longer than ${MAX_TRUST_DOMAIN_LENGTH} bytes`);
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (!isTrustDomainChar(c)) {
      if (c === 0x3a) throw new SpiffeIdError('trust domain must not contain a port');
      if (c === 0x40) throw new SpiffeIdError('trust domain must not contain userinfo');
      if (c >= 0x41 && c <= 0x5a) throw new SpiffeIdError('trust domain must be lowercase');
      throw new SpiffeIdError(`trust domain has an invalid character ${JSON.stringify(name[i])}`);
    }
  }
  return name;
}

export function parseSpiffeId(text: string): SpiffeId {
  if (text.length > MAX_LENGTH) throw new SpiffeIdError(`SPIFFE ID is longer than ${MAX_LENGTH} bytes`);
  if (!text.startsWith(SCHEME)) {
    if (text.toLowerCase().startsWith(SCHEME)) throw new SpiffeIdError('scheme must be lowercase "spiffe"');
    throw new SpiffeIdError('scheme must be "spiffe://"');
  }
  const rest = text.slice(SCHEME.length);
  const slash = rest.indexOf('/');
  const trustDomain = parseTrustDomain(slash === -1 ? rest : rest.slice(0, slash));
  const path = slash === -1 ? '' : rest.slice(slash);
  if (path !== '') {
    // Path: "/" followed by one or more non-empty segments of path characters.
    let segmentStart = 1;
    for (let i = 1; i <= path.length; i++) {
      const c = i < path.length ? path.charCodeAt(i) : 0x2f;
      if (c === 0x2f) {
        const segment = path.slice(segmentStart, i);
        if (segment === '') throw new SpiffeIdError('path has an empty segment');
        if (segment === '.' || segment === '..') throw new SpiffeIdError('path has a "." or ".." segment');
        segmentStart = i + 1;
      } else if (!isPathChar(c)) {
        if (c === 0x25) throw new SpiffeIdError('path must not be percent-encoded');
        if (c === 0x3f) throw new SpiffeIdError('SPIFFE ID must not have a query');
        if (c === 0x23) throw new SpiffeIdError('SPIFFE ID must not have a fragment');
        throw new SpiffeIdError(`path has an invalid character ${JSON.stringify(path[i])}`);
      }
    }
  }
  return { trustDomain, path, uri: text };
}
