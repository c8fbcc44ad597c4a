// The HTTP/1.1 request-head parser, on the raw bytes of the TLS socket (issue 15 item 3): the
// most dangerous code a proxy has, so it refuses at least everything the proxy refuses today
// with Node's strict llhttp (insecureHTTPParser off) plus the checks server.ts makes after it.
// What is refused, and where the rule comes from:
// - request line (RFC 9112 3): a method llhttp does not know (HPE_INVALID_METHOD), CONNECT and
//   its authority-form (server.ts has no 'connect' listener: Node destroys the socket), a target
//   not in origin-form (`*`, absolute-form: normaliseTarget's "only origin-form", SPEC "Path
//   normalisation") or with a byte outside 0x21-0x7e (HPE_INVALID_URL, answered `bad_path`),
//   a version other than HTTP/1.0 or HTTP/1.1 (no HTTP/0.9 line without version, no 2.0);
// - lines: CR not followed by LF, LF not preceded by CR (llhttp strict: no lenient flags);
// - fields (RFC 9112 5): an empty name or a byte outside tchar in it, whitespace before the colon
//   (HPE_INVALID_HEADER_TOKEN), a line starting with SP or HTAB (obs-fold, 5.2), a control
//   other than HTAB, or DEL, in a value (HPE_INVALID_HEADER_TOKEN; NUL, bare CR and LF included);
// - framing (RFC 9112 6): Content-Length and Transfer-Encoding together, two Content-Length
//   fields even if equal (HPE_UNEXPECTED_CONTENT_LENGTH), a Content-Length that is not 1-15
//   digits (HPE_INVALID_CONTENT_LENGTH; badFraming's 15-digit bound), a Transfer-Encoding other
//   than exactly `chunked`, or two of them (the old server.ts badFraming, now in test/unit/http1/llhttp-oracle.ts), no Host in HTTP/1.1 or two
//   Host fields (badFraming), an upgrade with a body (server.ts onUpgrade);
// - size: Node's maxHeaderSize as server.ts sets it from limits.maxHeaderBytes (node_http_parser
//   TrackHeader: target + names + values, refused at >= the limit: HPE_HEADER_OVERFLOW), more than
//   maxFields fields, or a head of more raw bytes than twice the limit (whitespace Node does not
//   count, bounded because we hold the head until it is whole).
import { TOKEN_CHAR } from '../forward/http-syntax.ts';
import { failure, type Http1Failure } from './failure.ts';
import { bytesAre, nameIs } from './field-names.ts';
import { latin1 } from './latin1.ts';
import { knownMethod } from './methods.ts';
import type { Expectation, RequestHead } from './request-head.ts';

export interface HeadLimits {
  /** limits.maxHeaderBytes, counted as Node counts it. */
  readonly maxHeaderBytes: number;
  /** Fields per head (HTTP/2 gets 128: h2Options' maxHeaderListPairs). */
  readonly maxFields: number;
}

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;
const SLASH = 0x2f;
const COMMA = 0x2c;
const END_OF_HEAD = Buffer.from('\r\n\r\n', 'latin1');
// Node's checkContinue test (lib/_http_server.js continueExpression).
const CONTINUE = /(?:^|\W)100-continue(?:$|\W)/i;

/** Per byte: 1 if it may appear in a request-target we accept (visible ASCII; llhttp refuses the rest). */
const TARGET_CHAR = new Uint8Array(256);
for (let c = 0x21; c <= 0x7e; c++) TARGET_CHAR[c] = 1;

/**
 * Reads one request head at a time from a connection's bytes, however they are split. `push`
 * answers the head once it is whole (its `consumed` says where the body or the next request
 * starts in that chunk), undefined while more bytes are needed (all of the chunk was taken), or
 * a failure. After a head, push the rest of the chunk (after its body) for the next one.
 */
export class RequestHeadParser {
  private readonly limits: HeadLimits;
  private readonly rawLimit: number;
  /** Copies of the bytes of a head split across chunks (only then: most heads arrive whole). */
  private pending: Buffer[] = [];
  private pendingLength = 0;
  /** The last byte held (-1: none), so a CR and what follows it may be split across chunks. */
  private lastKept = -1;

  constructor(limits: HeadLimits) {
    this.limits = limits;
    this.rawLimit = limits.maxHeaderBytes * 2;
  }

  /** Bytes held of a head not yet whole. */
  get buffered(): number {
    return this.pendingLength;
  }

  push(chunk: Buffer, start: number): RequestHead | Http1Failure | undefined {
    const end = chunk.length;
    if (this.pendingLength === 0) {
      let i = start;
      // RFC 9112 2.2: empty lines before a request-line are ignored (llhttp skips CR and LF there).
      while (i < end && (chunk[i] === CR || chunk[i] === LF)) i++;
      if (i === end) return undefined;
      const at = chunk.indexOf(END_OF_HEAD, i);
      if (at === -1) return this.keep(chunk, i);
      if (at + 4 - i > this.rawLimit) return failure('headers_too_large', 'request head too large');
      return this.parse(chunk, i, at + 4, at + 4);
    }
    const headEnd = this.endAcross(chunk, start);
    if (headEnd === -1) return this.keep(chunk, start);
    const total = this.pendingLength + headEnd - start;
    if (total > this.rawLimit) return failure('headers_too_large', 'request head too large');
    this.pending.push(chunk.subarray(start, headEnd));
    const whole = Buffer.concat(this.pending, total);
    this.pending = [];
    this.pendingLength = 0;
    this.lastKept = -1;
    return this.parse(whole, 0, total, headEnd);
  }

  private keep(chunk: Buffer, from: number): Http1Failure | undefined {
    // A line ending llhttp refuses at once is refused now, not when (if ever) CRLFCRLF comes: a
    // head sent with bare LFs has no CRLFCRLF, and would only time out.
    let prev = this.lastKept;
    const end = chunk.length;
    for (let j = from; j < end; j++) {
      const c = chunk[j]!;
      if ((c === LF && prev !== CR) || (prev === CR && c !== LF)) return failure('bad_request', 'a bare CR or LF in the request head');
      prev = c;
    }
    this.lastKept = prev;
    this.pendingLength += chunk.length - from;
    if (this.pendingLength > this.rawLimit) return failure('headers_too_large', 'request head too large');
    // A copy: the socket's chunk may be a slice of a buffer that is reused.
    this.pending.push(Buffer.from(chunk.subarray(from)));
    return undefined;
  }

  /** Where the head ends in `chunk` when its CRLFCRLF may straddle the held bytes and this chunk; -1 if not yet. */
  private endAcross(chunk: Buffer, start: number): number {
    const bridge = Buffer.allocUnsafe(6);
    let tail = 0;
    for (let p = this.pending.length - 1; p >= 0 && tail < 3; p--) {
      const piece = this.pending[p]!;
      for (let k = piece.length - 1; k >= 0 && tail < 3; k--) bridge[2 - tail++] = piece[k]!;
    }
    const head = Math.min(3, chunk.length - start);
    chunk.copy(bridge, 3, start, start + head);
    const at = bridge.subarray(3 - tail, 3 + head).indexOf(END_OF_HEAD);
    if (at !== -1) return start + at - tail + 4;
    const inChunk = chunk.indexOf(END_OF_HEAD, start);
    return inChunk === -1 ? -1 : inChunk + 4;
  }

  /** Parses the whole head `buf[s, e)` (ending in CRLFCRLF, nowhere before). */
  private parse(buf: Buffer, s: number, e: number, consumed: number): RequestHead | Http1Failure {
    let i = s;
    // ---- request line: method SP request-target SP HTTP-version CRLF (RFC 9112 3)
    while (TOKEN_CHAR[buf[i]!] === 1) i++;
    if (buf[i] !== SP) return failure('bad_request', 'request line: bad method');
    const method = knownMethod(buf, s, i);
    if (method === undefined) return failure('bad_request', 'request line: unknown method');
    if (method === 'CONNECT') return failure('bad_request', 'CONNECT is not proxied');
    // llhttp reads more than one SP around the target as one; so do we (the line is re-written).
    while (buf[i] === SP) i++;
    const ts = i;
    while (TARGET_CHAR[buf[i]!] === 1) i++;
    if (i === ts) return failure('bad_target', 'request line: no request-target');
    if (buf[i] !== SP) return buf[i] === CR ? failure('bad_request', 'request line: no HTTP version') : failure('bad_target', 'request-target: byte 0x' + buf[i]!.toString(16));
    if (buf[ts] !== SLASH) return failure('bad_target', 'only origin-form targets are accepted');
    const te = i;
    while (buf[i] === SP) i++;
    if (
      buf[i] !== 0x48 || buf[i + 1] !== 0x54 || buf[i + 2] !== 0x54 || buf[i + 3] !== 0x50 || buf[i + 4] !== SLASH ||
      buf[i + 5] !== 0x31 || buf[i + 6] !== 0x2e || (buf[i + 7] !== 0x31 && buf[i + 7] !== 0x30) || buf[i + 8] !== CR || buf[i + 9] !== LF
    ) {
      return failure('bad_request', 'request line: HTTP/1.0 or HTTP/1.1 expected');
    }
    const version = buf[i + 7] === 0x31 ? 11 : 10;
    i += 10;
    const target = latin1(buf, ts, te);
    let counted = te - ts;

    // ---- field lines (RFC 9112 5)
    // Long heads (tokens) are scanned four bytes at a time (valueEnd).
    const words = e - s > 256 ? new DataView(buf.buffer, buf.byteOffset, buf.length) : undefined;
    const fields: string[] = [];
    let hosts = 0;
    let lengths = 0;
    let contentLength = 0;
    let lengthIsZeroText = false;
    let codings = 0;
    let chunked = false;
    let close = false;
    let keepAliveToken = false;
    let connectionUpgrade = false;
    let upgradeField = false;
    let expect: Expectation = 'none';
    for (;;) {
      const c = buf[i]!;
      if (c === CR) {
        if (buf[i + 1] !== LF) return failure('bad_request', 'CR without LF');
        break;
      }
      if (c === SP || c === HTAB) return failure('bad_request', 'obs-fold or whitespace before a field name');
      const ns = i;
      while (TOKEN_CHAR[buf[i]!] === 1) i++;
      if (buf[i] !== COLON) return failure('bad_request', i === ns ? 'empty field name' : 'field name: byte 0x' + buf[i]!.toString(16));
      const nameLength = i - ns;
      if (nameLength === 0) return failure('bad_request', 'empty field name');
      i++;
      while (buf[i] === SP || buf[i] === HTAB) i++;
      const vs = i;
      i = valueEnd(buf, i, e, words);
      if (i < 0) return failure('bad_request', 'field value: byte 0x' + (-1 - i).toString(16));
      if (buf[i + 1] !== LF) return failure('bad_request', 'CR without LF');
      let ve = i;
      while (ve > vs && (buf[ve - 1] === SP || buf[ve - 1] === HTAB)) ve--;
      // Node counts the value as llhttp reports it: trailing whitespace included.
      counted += nameLength + i - vs;
      i += 2;
      if (fields.length === this.limits.maxFields * 2) return failure('headers_too_large', 'too many fields');
      fields.push(latin1(buf, ns, ns + nameLength), latin1(buf, vs, ve));
      switch (nameLength) {
        case 4:
          if (nameIs(buf, ns, 4, 'host')) hosts++;
          break;
        case 14:
          if (nameIs(buf, ns, 14, 'content-length')) {
            lengths++;
            const n = digits(buf, vs, ve);
            if (n < 0) return failure('bad_request', 'Content-Length: 1 to 15 digits expected');
            contentLength = n;
            lengthIsZeroText = ve - vs === 1;
          }
          break;
        case 17:
          if (nameIs(buf, ns, 17, 'transfer-encoding')) {
            codings++;
            // llhttp takes trailing SP after the coding but not HTAB (HPE_INVALID_TRANSFER_ENCODING).
            let te2 = i - 2;
            while (buf[te2 - 1] === SP) te2--;
            chunked = bytesAre(buf, vs, te2, 'chunked');
          }
          break;
        case 10:
          if (nameIs(buf, ns, 10, 'connection')) {
            // Comma-separated tokens, any case (RFC 9110 7.6.1), as llhttp reads them.
            let ts2 = vs;
            for (let k = vs; k <= ve; k++) {
              if (k < ve && buf[k] !== COMMA) continue;
              let a = ts2;
              let b = k;
              while (a < b && (buf[a] === SP || buf[a] === HTAB)) a++;
              while (b > a && (buf[b - 1] === SP || buf[b - 1] === HTAB)) b--;
              if (bytesAre(buf, a, b, 'close')) close = true;
              else if (bytesAre(buf, a, b, 'keep-alive')) keepAliveToken = true;
              else if (bytesAre(buf, a, b, 'upgrade')) connectionUpgrade = true;
              ts2 = k + 1;
            }
          }
          break;
        case 7:
          // llhttp marks an upgrade only for a non-empty Upgrade value.
          if (ve > vs && nameIs(buf, ns, 7, 'upgrade')) upgradeField = true;
          break;
        case 6:
          // Node answers Expect only in HTTP/1.1 (lib/_http_server.js); 100-continue anywhere in it.
          if (version === 11 && nameIs(buf, ns, 6, 'expect')) expect = expect === 'continue' || CONTINUE.test(fields[fields.length - 1]!) ? 'continue' : 'other';
          break;
      }
    }
    if (counted >= this.limits.maxHeaderBytes) return failure('headers_too_large', 'request head too large');

    // ---- framing (RFC 9112 6.1-6.3, and what server.ts refuses after Node's parser)
    if (lengths > 1) return failure('bad_request', 'more than one Content-Length');
    if (codings > 0 && lengths > 0) return failure('bad_request', 'Content-Length with Transfer-Encoding');
    if (codings > 1) return failure('bad_request', 'more than one Transfer-Encoding');
    if (codings === 1 && !chunked) return failure('bad_request', 'Transfer-Encoding other than chunked');
    if (hosts > 1 || (hosts === 0 && version === 11)) return failure('bad_request', hosts === 0 ? 'no Host' : 'more than one Host');
    const upgrade = upgradeField && connectionUpgrade;
    if (upgrade && (codings > 0 || (lengths > 0 && !(lengthIsZeroText && contentLength === 0)))) return failure('bad_request', 'an upgrade with a body');
    return {
      method,
      target,
      version,
      fields,
      // An upgrade's next bytes are the new protocol's (its body was refused above).
      framing: upgrade ? 'none' : codings > 0 ? 'chunked' : lengths > 0 ? 'length' : 'none',
      contentLength: upgrade ? 0 : contentLength,
      // llhttp_should_keep_alive: HTTP/1.1 unless `close`; HTTP/1.0 only with `keep-alive`.
      keepAlive: version === 11 ? !close : keepAliveToken,
      upgrade,
      expect,
      consumed,
    };
  }
}

/**
 * Where the field value from `i` ends (the index of its CR), or -1 - the first byte it may not
 * hold. field-value (RFC 9110 5.5): HTAB, SP, VCHAR, obs-text. This scan runs over every byte
 * of the tokens and is the parser's hottest loop, so with `words` it first goes four bytes at a
 * time while no byte is below 0x20 or is 0x7f (the exact tests of Bit Twiddling Hacks' hasless
 * and haszero; test/unit/http1/head-parser.test.ts checks them), then byte by byte from the word
 * that holds the CR, an HTAB or a refused byte. Measured 755 -> 439 ns over a 650-byte token.
 */
function valueEnd(buf: Buffer, start: number, e: number, words: DataView | undefined): number {
  let i = start;
  if (words !== undefined) {
    // A CR precedes e - 3 (the head ends in CRLFCRLF), so the loop stops there at the latest.
    while (i <= e - 4 && !holdsControl(words.getUint32(i, true))) i += 4;
  }
  for (;;) {
    const c = buf[i]!;
    if (c >= SP) {
      if (c === 0x7f) return -1 - c;
    } else if (c !== HTAB) {
      return c === CR ? i : -1 - c;
    }
    i++;
  }
}

/** Some byte of the 32-bit word `w` is below 0x20 or is 0x7f (exact, for any w). */
export function holdsControl(w: number): boolean {
  const d = w ^ 0x7f7f7f7f;
  return ((((w - 0x20202020) & ~w) | ((d - 0x01010101) & ~d)) & 0x80808080) !== 0;
}

/** The value of 1-15 ASCII digits in `buf[s, e)` (exact below 2^53: badFraming's bound), or -1. */
function digits(buf: Buffer, s: number, e: number): number {
  if (e === s || e - s > 15) return -1;
  let n = 0;
  for (let k = s; k < e; k++) {
    const d = buf[k]! - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}
