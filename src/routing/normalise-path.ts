// The request-target parser of SPEC "Path normalisation". Hand-written on purpose: a general
// URL parser reads `//admin` as a host, decodes `%2F` into a separator, or matches on the query,
// and each of those has let a request past some proxy's policy.

export interface NormalisedTarget {
  /** The path the policy matches and the service receives. */
  readonly path: string;
  /** The original query including its leading `?`, or `''`; forwarded unchanged. */
  readonly query: string;
}

export interface BadPath {
  readonly bad: string;
}

export interface NormaliseOptions {
  /** `routing.allowPathParams`: accept `;` in the path. */
  readonly allowPathParams: boolean;
}

const HEX = '0123456789ABCDEF';

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

function isUnreserved(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) ||
    c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e
  );
}

// RFC 3986 pchar minus unreserved and `%`: sub-delims, `:` and `@` (`;` is checked separately).
function isPathPunctuation(c: number): boolean {
  return (
    c === 0x21 || c === 0x24 || c === 0x26 || c === 0x27 || c === 0x28 || c === 0x29 || c === 0x2a ||
    c === 0x2b || c === 0x2c || c === 0x3d || c === 0x3a || c === 0x40
  );
}

function bad(reason: string): BadPath {
  return { bad: reason };
}

/** Normalises an HTTP request-target, or says why it is refused (400 `bad_path`). */
export function normaliseTarget(target: string, options: NormaliseOptions): NormalisedTarget | BadPath {
  if (target.length === 0 || target.charCodeAt(0) !== 0x2f) return bad('only origin-form targets ("/...") are accepted');
  let end = target.indexOf('?');
  if (end === -1) end = target.length;
  for (let i = end; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c === 0x23) return bad('"#" is not allowed in a request-target');
    if (c < 0x20 || c >= 0x7f) return bad('control or non-ASCII character in the query');
  }

  // Segments after decoding, resolved as we go: `.` dropped, `..` pops, empty (a repeated `/`)
  // merged. The result ends in `/` when the last segment was empty, `.` or `..`.
  const segments: string[] = [];
  let segment = '';
  let trailingSlash = false;
  for (let i = 1; i <= end; i++) {
    const c = i < end ? target.charCodeAt(i) : 0x2f;
    if (c === 0x2f) {
      if (segment === '..') {
        if (segments.length === 0) return bad('".." above the root');
        segments.pop();
      } else if (segment !== '.' && segment !== '') {
        segments.push(segment);
      }
      trailingSlash = i === end && (segment === '' || segment === '.' || segment === '..');
      segment = '';
      continue;
    }
    if (c === 0x25) {
      const high = i + 2 < end ? hexValue(target.charCodeAt(i + 1)) : -1;
      const low = i + 2 < end ? hexValue(target.charCodeAt(i + 2)) : -1;
      if (high < 0 || low < 0) return bad('invalid percent-escape');
      const byte = high * 16 + low;
      if (byte === 0x2f || byte === 0x5c || byte === 0x00) return bad('encoded "/", "\\" or NUL');
      if (byte < 0x20 || byte === 0x7f) return bad('encoded control character');
      segment += isUnreserved(byte) ? String.fromCharCode(byte) : '%' + HEX[high]! + HEX[low]!;
      i += 2;
      continue;
    }
    if (isUnreserved(c) || isPathPunctuation(c)) {
      segment += String.fromCharCode(c);
      continue;
    }
    if (c === 0x3b) {
      if (!options.allowPathParams) return bad('";" path parameters are not allowed');
      segment += ';';
      continue;
    }
    if (c === 0x23) return bad('"#" is not allowed in a request-target');
    if (c === 0x5c) return bad('raw "\\" is not allowed');
    if (c < 0x20 || c === 0x7f) return bad('control character in the path');
    return bad(`character ${JSON.stringify(String.fromCharCode(c))} is not allowed in a path`);
  }
  let path = '/' + segments.join('/');
  if (trailingSlash && segments.length > 0) path += '/';
  return { path, query: target.slice(end) };
}

export function isBadPath(result: NormalisedTarget | BadPath): result is BadPath {
  return (result as BadPath).bad !== undefined;
}
