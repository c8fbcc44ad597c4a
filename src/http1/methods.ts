// The request methods llhttp knows (Node's `_http_common.methods`, llhttp's HTTP method map):
// Node's server refuses any other token with HPE_INVALID_METHOD, so ours does too. Each is a
// shared constant, so reading a method allocates nothing.

const METHODS = [
  'DELETE', 'GET', 'HEAD', 'POST', 'PUT', 'CONNECT', 'OPTIONS', 'TRACE', 'COPY', 'LOCK', 'MKCOL', 'MOVE',
  'PROPFIND', 'PROPPATCH', 'SEARCH', 'UNLOCK', 'BIND', 'REBIND', 'UNBIND', 'ACL', 'REPORT', 'MKACTIVITY',
  'CHECKOUT', 'MERGE', 'M-SEARCH', 'NOTIFY', 'SUBSCRIBE', 'UNSUBSCRIBE', 'PATCH', 'PURGE', 'MKCALENDAR',
  'LINK', 'UNLINK', 'SOURCE', 'QUERY',
] as const;

/** By first byte, the methods starting with it. */
const BY_FIRST: (string[] | undefined)[] = [];
for (const m of METHODS) (BY_FIRST[m.charCodeAt(0)] ??= []).push(m);

/** The known method spelled by `buf[start, end)` (case-sensitive, RFC 9110 9.1), or undefined. */
export function knownMethod(buf: Uint8Array, start: number, end: number): string | undefined {
  const candidates = BY_FIRST[buf[start]!];
  if (candidates === undefined) return undefined;
  const length = end - start;
  for (const m of candidates) {
    if (m.length !== length) continue;
    let k = 1;
    while (k < length && buf[start + k] === m.charCodeAt(k)) k++;
    if (k === length) return m;
  }
  return undefined;
}
