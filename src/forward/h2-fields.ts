// HTTP/2 field rules for what the h2c pool sends to the service and relays back from it.
// Fields travel as flat lists (name, value, name, value…), as node:http2 gives and takes them
// ("raw headers"), so no header object is built per request.
import { badTarget, badValueWritten, isToken } from './http-syntax.ts';

/** RFC 9113 8.2.1: a field name is a token in lowercase. */
const FIELD_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;

/**
 * RFC 9113 8.2.2: connection-specific fields have no meaning in HTTP/2 and make a message
 * malformed; `host` is replaced by `:authority` (8.3.1), and `te` may only say `trailers`.
 */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host']);

function dropped(name: string, value: string): boolean {
  // A pseudo-header is never taken from a list of fields: only ours (request) or none (relayed).
  if (name.charCodeAt(0) === 0x3a) return true;
  if (CONNECTION_SPECIFIC.has(name)) return true;
  return name === 'te' && value.trim().toLowerCase() !== 'trailers';
}

/**
 * The raw header list of a request to the service: our pseudo-headers, then the caller's fields;
 * undefined if any of them can't be sent as it is. node:http2 does not check a raw list's values,
 * and RFC 9113 8.2.1 makes a CR, LF or NUL in one malformed (a service or gateway behind it that
 * speaks HTTP/1.1 would read it as a second field).
 */
export function requestFields(method: string, path: string, authority: string, headers: readonly string[]): string[] | undefined {
  if (!isToken(method) || badTarget(path) || path === '' || badTarget(authority)) return undefined;
  const out = [':method', method, ':scheme', 'http', ':authority', authority, ':path', path];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const value = headers[i + 1]!;
    if (dropped(name, value)) continue;
    if (!FIELD_NAME.test(name) || badValueWritten(value)) return undefined;
    out.push(name, value);
  }
  return out;
}

/**
 * The service's response head or trailers as relayed: without `:status` (the sink gets it as a
 * number) or any other pseudo-header, and without connection-specific fields.
 */
export function relayedFields(raw: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    if (!dropped(name, value)) out.push(name, value);
  }
  return out;
}

/**
 * Request trailers as node:http2's `sendTrailers` takes them (an object; a repeated name becomes a
 * list); undefined if one can't be sent as it is (the rules of `requestFields`).
 */
export function trailerObject(raw: readonly string[]): Record<string, string | string[]> | undefined {
  const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    if (dropped(name, value)) continue;
    if (!FIELD_NAME.test(name) || badValueWritten(value)) return undefined;
    const seen = out[name];
    if (seen === undefined) out[name] = value;
    else if (typeof seen === 'string') out[name] = [seen, value];
    else seen.push(value);
  }
  return out;
}

/** A header object (as an event may give it) as a flat list. */
export function flatten(headers: Readonly<Record<string, string | string[] | number | undefined>>): string[] {
  const out: string[] = [];
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.push(name, v);
    else out.push(name, String(value));
  }
  return out;
}
