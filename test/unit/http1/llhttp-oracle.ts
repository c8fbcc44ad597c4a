// The oracle: Node's own llhttp, through the HTTPParser binding Node's server uses
// (lib/_http_common.js), set up as server.ts set up its https server before our own parser
// replaced it (strict: no lenient flags; maxHeaderSize = limits.maxHeaderBytes), followed by the
// checks server.ts then made after it (badFraming, kept here as the record of them).
import { createRequire } from 'node:module';
import type { Outcome, ParsedRequest } from './outcome.ts';

/**
 * Framing a proxy must refuse (RFC 9112): no Host field, or more than one (3.2; Node keeps the
 * first and drops the rest silently), or a Transfer-Encoding other than exactly `chunked` (6.1; we
 * could not forward another coding faithfully, and Node's parser decoded only the chunking), or
 * a Content-Length beyond 15 digits (we re-send lengths as numbers, exact only below 2^53).
 * HTTP/1.0 requests may omit Host.
 */
function badFraming(rawHeaders: readonly string[], httpVersion: string): boolean {
  let hosts = 0;
  let codings = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') {
      if (++hosts > 1) return true;
    } else if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') {
      if (++codings > 1 || rawHeaders[i + 1]!.trim().toLowerCase() !== 'chunked') return true;
    } else if (name.length === 14 && rawHeaders[i + 1]!.trim().length > 15 && name.toLowerCase() === 'content-length') {
      return true;
    }
  }
  return hosts === 0 && httpVersion !== '1.0';
}

interface HttpParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(data: Buffer): number | Error;
  finish(): Error | undefined;
  close(): void;
  [key: number]: unknown;
}
interface HttpParserClass {
  new (): HttpParser;
  REQUEST: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
  kOnExecute: number;
  kLenientNone: number;
}

const require = createRequire(import.meta.url);
const common = require('_http_common') as { HTTPParser: HttpParserClass; methods: string[] };
export const HTTPParser = common.HTTPParser;
const methods = common.methods;

/** Node's checkContinue test (lib/_http_server.js continueExpression). */
const CONTINUE = /(?:^|\W)100-continue(?:$|\W)/i;

/** Which checks follow llhttp: none, those server.ts makes today, or those plus issue 15's. */
export type Checks = 'llhttp' | 'today' | 'ours';

/** What server.ts refuses today after Node's parser accepted a head (each check cites where). */
export function proxyRefusesToday(head: ParsedRequest): string | undefined {
  // server.ts has no 'connect' listener: Node destroys a CONNECT request's socket unanswered.
  if (head.method === 'CONNECT') return 'connect';
  // normaliseTarget (SPEC "Path normalisation"): only origin-form; no control or non-ASCII byte.
  if (!head.target.startsWith('/') || /[^\x21-\x7e]/.test(head.target)) return 'target';
  // server.ts onRequest/onUpgrade: badFraming (Host count, TE exactly chunked once, CL ≤ 15 digits).
  if (badFraming(head.fields, head.version)) return 'framing';
  if (head.upgrade) {
    // server.ts onUpgrade: an upgrade with a body is malformed (req.headers['content-length'] must be '0' if given).
    const te = fieldValues(head.fields, 'transfer-encoding');
    const cl = fieldValues(head.fields, 'content-length');
    if (te.length > 0 || (cl.length > 0 && cl[0] !== '0')) return 'upgrade';
  }
  return undefined;
}

/** What issue 15 adds: HTTP/1.0 and 1.1 only (llhttp also takes 0.9 and 2.0 lines), at most maxFields fields
 * (HTTP/2 gets 128: h2Options' maxHeaderListPairs; Node would silently drop fields past maxHeadersCount, 2000). */
export function oursAlsoRefuses(head: ParsedRequest, maxFields: number): string | undefined {
  if (head.version !== '1.0' && head.version !== '1.1') return 'version';
  if (head.fields.length > maxFields * 2) return 'fields';
  return undefined;
}

function fieldValues(fields: readonly string[], lower: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < fields.length; i += 2) if (fields[i]!.toLowerCase() === lower) out.push(fields[i + 1]!);
  return out;
}

/** llhttp's reading of the bytes, then server.ts's checks on each head it accepted. */
export function readLlhttp(chunks: readonly Buffer[], maxHeaderBytes: number, maxFields: number, checks: Checks = 'ours'): Outcome {
  const outcome: Outcome = { heads: [], bodies: [], refused: false };
  const parser = new HTTPParser();
  parser.initialize(HTTPParser.REQUEST, {}, maxHeaderBytes, HTTPParser.kLenientNone);
  let pendingFields: string[] = [];
  let pendingUrl = '';
  let body: Buffer[] = [];
  let checkFailed = false;
  let upgraded = false;
  parser[HTTPParser.kOnHeaders] = (fields: string[], url: string) => {
    pendingFields.push(...fields);
    pendingUrl += url;
  };
  parser[HTTPParser.kOnHeadersComplete] = (major: number, minor: number, fields: string[] | undefined, method: number, url: string | undefined, _s: unknown, _m: unknown, upgrade: boolean, keepAlive: boolean) => {
    const all = fields === undefined ? pendingFields : [...pendingFields, ...fields];
    const target = url === undefined ? pendingUrl : pendingUrl + url;
    pendingFields = [];
    pendingUrl = '';
    const version = `${major}.${minor}`;
    const te = fieldValues(all, 'transfer-encoding');
    const cl = fieldValues(all, 'content-length');
    const expects = fieldValues(all, 'expect');
    const head: ParsedRequest = {
      // llhttp's method numbers: its HTTP methods in order, then RTSP's (refused in a request), then QUERY at 46.
      method: method === 46 ? 'QUERY' : (methods[method] ?? String(method)),
      target,
      version,
      fields: all,
      framing: upgrade ? 'none' : te.length > 0 ? 'chunked' : cl.length > 0 ? 'length ' + Number(cl[0]) : 'none',
      keepAlive,
      upgrade,
      // Node answers Expect in HTTP/1.1 only; repeated fields are joined with ', ' (req.headers).
      expect: version !== '1.1' || expects.length === 0 ? 'none' : CONTINUE.test(expects.join(', ')) ? 'continue' : 'other',
    };
    if (checkFailed || upgraded) return 0;
    const refusal = checks === 'llhttp' ? undefined : (proxyRefusesToday(head) ?? (checks === 'ours' ? oursAlsoRefuses(head, maxFields) : undefined));
    if (refusal !== undefined) {
      checkFailed = true;
      return 0;
    }
    outcome.heads.push(head);
    // Node's server answers 2 for an upgrade it has a listener for (parserOnIncoming): no body,
    // the rest of the bytes are the new protocol's.
    if (upgrade) {
      upgraded = true;
      return 2;
    }
    return 0;
  };
  parser[HTTPParser.kOnBody] = (slice: Buffer) => void body.push(Buffer.from(slice));
  parser[HTTPParser.kOnMessageComplete] = () => {
    // Fields flushed since the head ended are the trailers (node_http_parser on_message_complete).
    pendingFields = [];
    pendingUrl = '';
    if (checkFailed || upgraded) return;
    outcome.bodies.push(Buffer.concat(body).toString('latin1'));
    body = [];
  };
  parser[HTTPParser.kOnExecute] = () => {};
  try {
    for (const chunk of chunks) {
      if (chunk.length === 0) continue;
      const result = parser.execute(chunk);
      if (checkFailed) break;
      if (upgraded) return outcome;
      if (result instanceof Error) {
        outcome.refused = true;
        return outcome;
      }
    }
    if (checkFailed) {
      outcome.refused = true;
      return outcome;
    }
    if (parser.finish() instanceof Error) outcome.refused = true;
    return outcome;
  } finally {
    parser.close();
  }
}
