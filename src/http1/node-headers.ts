// A request's fields as the headers object the decision path reads (grant, posture, intent,
// request id, Host, Content-Type), built exactly as Node's IncomingMessage builds `req.headers`
// (lib/_http_incoming.js matchKnownFields), so replacing Node's HTTP server changes no decision:
// names lowercased; a repeated Set-Cookie an array; repeated Cookie joined with "; "; a repeat of
// a field that has one meaning (Host, Content-Type, Authorization, …) dropped, the first kept
// (admit() and the JSON-RPC route refuse two Host or Content-Type fields from the raw fields);
// any other repeat joined with ", " (so a grant header sent twice is one value no token
// verifies, as before). A null prototype: a field named `__proto__` or `constructor` is a field.
import type { IncomingHttpHeaders } from 'node:http';

/** Fields of which Node keeps only the first (matchKnownFields' 'discard duplicates' list). */
const FIRST_ONLY = new Set([
  'content-type', 'content-length', 'user-agent', 'referer', 'host', 'authorization', 'proxy-authorization',
  'if-modified-since', 'if-unmodified-since', 'from', 'location', 'max-forwards', 'retry-after', 'etag',
  'last-modified', 'server', 'age', 'expires',
]);

/** Names already lowercase (most are) are kept as they are: no new string per field. */
function lower(name: string): string {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) return name.toLowerCase();
  }
  return name;
}

export function headersObject(fields: readonly string[]): IncomingHttpHeaders {
  const headers = Object.create(null) as Record<string, string | string[] | undefined>;
  for (let i = 0; i < fields.length; i += 2) {
    const name = lower(fields[i]!);
    const value = fields[i + 1]!;
    const had = headers[name];
    if (had === undefined) {
      headers[name] = name === 'set-cookie' ? [value] : value;
    } else if (name === 'set-cookie') {
      (had as string[]).push(value);
    } else if (name === 'cookie') {
      headers[name] = `${had as string}; ${value}`;
    } else if (!FIRST_ONLY.has(name)) {
      headers[name] = `${had as string}, ${value}`;
    }
  }
  return headers as IncomingHttpHeaders;
}
