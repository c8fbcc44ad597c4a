// The request-head parser on its own: what a head becomes, how splits, limits and refusals
// behave, and that it keeps its promises on allocation (shared method strings, body slices as views).
import { describe, expect, it } from 'vitest';
import { ChunkedDecoder, MORE } from '../../../src/http1/chunked-decoder.ts';
import { isFailure, type Http1Failure } from '../../../src/http1/failure.ts';
import { holdsControl, RequestHeadParser } from '../../../src/http1/head-parser.ts';
import fc from 'fast-check';
import type { RequestHead } from '../../../src/http1/request-head.ts';

const LIMITS = { maxHeaderBytes: 16_384, maxFields: 128 };
const bytes = (s: string) => Buffer.from(s, 'latin1');

function parseOne(s: string, limits = LIMITS): RequestHead | Http1Failure | undefined {
  return new RequestHeadParser(limits).push(bytes(s), 0);
}

function head(s: string): RequestHead {
  const h = parseOne(s);
  if (h === undefined || isFailure(h)) throw new Error('refused: ' + JSON.stringify(h));
  return h;
}

function refusal(s: string, limits = LIMITS): string {
  const h = parseOne(s, limits);
  return isFailure(h) ? h.error : 'accepted';
}

describe('RequestHeadParser', () => {
  it('reads the request line, the fields as sent (values trimmed) and the framing, and says where the body starts', () => {
    const text = 'POST /orders/42/refund?x=1 HTTP/1.1\r\nHost: shop\r\nX-Grant:  abc \t\r\ncontent-length: 5\r\n\r\nhello';
    const h = head(text);
    expect(h).toMatchObject({ method: 'POST', target: '/orders/42/refund?x=1', version: 11, framing: 'length', contentLength: 5, keepAlive: true, upgrade: false, expect: 'none' });
    expect(h.fields).toEqual(['Host', 'shop', 'X-Grant', 'abc', 'content-length', '5']);
    expect(text.slice(h.consumed)).toBe('hello');
  });

  it('skips empty lines before a request (RFC 9112 2.2), as llhttp does', () => {
    const h = head('\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n');
    expect(h.target).toBe('/');
  });

  it('gives the same head for every split point, and pipelined heads one after another', () => {
    const text = 'GET /a HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\nConnection: close\r\n\r\n';
    const buf = bytes(text);
    for (let cut = 0; cut <= buf.length; cut++) {
      const parser = new RequestHeadParser(LIMITS);
      const got: RequestHead[] = [];
      for (const chunk of [buf.subarray(0, cut), buf.subarray(cut)]) {
        let pos = 0;
        for (;;) {
          const h = parser.push(chunk, pos);
          if (h === undefined) break;
          if (isFailure(h)) throw new Error(h.detail);
          got.push(h);
          pos = h.consumed;
          if (pos === chunk.length) break;
        }
      }
      expect(got.map((h) => [h.target, h.version, h.keepAlive])).toEqual([
        ['/a', 11, true],
        ['/b', 10, false],
      ]);
    }
  });

  it('shares one string per method: reading it allocates nothing', () => {
    expect(head('PATCH / HTTP/1.1\r\nHost: a\r\n\r\n').method).toBe('PATCH');
    expect(refusal('PATCHX / HTTP/1.1\r\nHost: a\r\n\r\n')).toBe('bad_request');
    expect(refusal('patch / HTTP/1.1\r\nHost: a\r\n\r\n')).toBe('bad_request');
  });

  it('refuses with a stable reason: bad_target for what Node answers as HPE_INVALID_URL or normaliseTarget as bad_path', () => {
    expect(refusal('GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n')).toBe('bad_target');
    expect(refusal('OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n')).toBe('bad_target');
    expect(refusal('GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n')).toBe('bad_target');
    expect(refusal('GET /\t HTTP/1.1\r\nHost: a\r\n\r\n')).toBe('bad_target');
    expect(refusal('CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n')).toBe('bad_request');
    expect(refusal('GET / HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n')).toBe('bad_request');
  });

  it('counts the head as Node does (target + names + values): refused at >= maxHeaderBytes with headers_too_large', () => {
    const limits = { maxHeaderBytes: 1024, maxFields: 128 };
    // counted = 1 (target) + 4 + 1 (Host: a) + 5 + n (Xxxxx: v…)
    const at = (n: number) => `GET / HTTP/1.1\r\nHost: a\r\nXxxxx: ${'v'.repeat(n)}\r\n\r\n`;
    expect(refusal(at(1024 - 11 - 1), limits)).toBe('accepted');
    expect(refusal(at(1024 - 11), limits)).toBe('headers_too_large');
  });

  it('refuses more than maxFields fields (431, as HTTP/2 caps header pairs)', () => {
    const fields = (n: number) => 'GET / HTTP/1.1\r\nHost: a\r\n' + Array.from({ length: n - 1 }, (_, i) => `f${i}: 1\r\n`).join('') + '\r\n';
    expect(refusal(fields(128))).toBe('accepted');
    expect(refusal(fields(129))).toBe('headers_too_large');
  });

  it('holds at most twice maxHeaderBytes of a head that never ends (whitespace Node does not count included)', () => {
    const limits = { maxHeaderBytes: 1024, maxFields: 128 };
    const parser = new RequestHeadParser(limits);
    expect(parser.push(bytes('GET / HTTP/1.1\r\nHost: a\r\nX:'), 0)).toBeUndefined();
    let result: RequestHead | Http1Failure | undefined;
    for (let i = 0; i < 100 && result === undefined; i++) result = parser.push(bytes(' '.repeat(100)), 0);
    expect(result).toMatchObject({ error: 'headers_too_large' });
    expect(parser.buffered).toBeLessThanOrEqual(2 * 1024 + 100);
  });

  it('refuses a bare LF or a CR without LF the moment it arrives, not when (if ever) the head would end', () => {
    // Heads with bare LFs never contain CRLFCRLF: waiting for it, they would only time out.
    for (const text of ['GET /orders/1 HTTP/1.1\nHost: localhost\n\n', 'GET / HTTP/1.1\r\nHost: a\rX: b', 'GET / HTTP/1.1\r\nHost: a\n']) {
      expect(refusal(text), JSON.stringify(text)).toBe('bad_request');
    }
    // Split anywhere, the same: a CR at a chunk's end is judged by the next chunk's first byte.
    const text = 'GET / HTTP/1.1\r\nHost: a\r';
    const parser = new RequestHeadParser(LIMITS);
    expect(parser.push(bytes(text), 0)).toBeUndefined();
    const next = parser.push(bytes('X-A: 1\r\n'), 0);
    expect(isFailure(next) ? next.error : 'accepted').toBe('bad_request');
    // A CRLF split between chunks is no bare CR.
    const split = new RequestHeadParser(LIMITS);
    expect(split.push(bytes('GET / HTTP/1.1\r'), 0)).toBeUndefined();
    expect(split.push(bytes('\nHost: a\r'), 0)).toBeUndefined();
    const whole = split.push(bytes('\n\r\n'), 0);
    expect(isFailure(whole) || whole === undefined ? 'refused' : whole.target).toBe('/');
  });

  it('reports Expect as Node answers it: 100-continue in HTTP/1.1 only, anything else as other', () => {
    expect(head('POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n').expect).toBe('continue');
    expect(head('POST / HTTP/1.1\r\nHost: a\r\nExpect: foo\r\n\r\n').expect).toBe('other');
    expect(head('POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n').expect).toBe('none');
  });

  it('marks an upgrade only with Connection: upgrade and a non-empty Upgrade, and gives it no body', () => {
    const up = head('GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n');
    expect([up.upgrade, up.framing]).toEqual([true, 'none']);
    expect(head('GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n').upgrade).toBe(false);
    expect(refusal('GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\nContent-Length: 00\r\n\r\n')).toBe('bad_request');
  });
});

describe('holdsControl (the value scan four bytes at a time)', () => {
  const truth = (w: number) => [0, 8, 16, 24].some((shift) => {
    const b = (w >>> shift) & 0xff;
    return b < 0x20 || b === 0x7f;
  });
  it('is exact on every word of edge bytes', () => {
    const edges = [0x00, 0x01, 0x08, 0x09, 0x0a, 0x0d, 0x1f, 0x20, 0x21, 0x3f, 0x40, 0x7e, 0x7f, 0x80, 0x81, 0x9f, 0xa0, 0xfe, 0xff];
    for (const a of edges) for (const b of edges) for (const c of edges) for (const d of edges) {
      const w = (a | (b << 8) | (c << 16) | (d << 24)) >>> 0;
      if (holdsControl(w) !== truth(w)) throw new Error('wrong on 0x' + w.toString(16));
    }
  });
  it('is exact on random words', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), (w) => holdsControl(w) === truth(w)), { numRuns: 20_000 });
  });
});

describe('ChunkedDecoder', () => {
  it('hands on the data as views of the chunk pushed (no copy) and says where the next request starts', () => {
    const slices: Buffer[] = [];
    const decoder = new ChunkedDecoder(LIMITS, (s) => slices.push(s));
    const input = bytes('5\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\nGET / HTTP/1.1\r\n');
    const end = decoder.push(input, 0);
    expect(end).toBe(input.indexOf('GET'));
    expect(Buffer.concat(slices).toString()).toBe('hello0123456789');
    for (const s of slices) expect(s.buffer).toBe(input.buffer);
  });

  it('goes on across chunks split anywhere', () => {
    const input = bytes('3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n');
    for (let cut = 0; cut <= input.length; cut++) {
      const slices: Buffer[] = [];
      const decoder = new ChunkedDecoder(LIMITS, (s) => slices.push(Buffer.from(s)));
      const first = decoder.push(input.subarray(0, cut), 0);
      const second = first === MORE ? decoder.push(input.subarray(cut), 0) : first;
      expect(second).toBe(first === MORE ? input.length - cut : input.length);
      expect(Buffer.concat(slices).toString()).toBe('abc0123456789abcdef');
    }
  });

  it('refuses extensions, long or odd sizes, missing CRLFs and unbounded trailers', () => {
    const refused = (s: string, limits = LIMITS) => {
      const r = new ChunkedDecoder(limits, () => {}).push(bytes(s), 0);
      return isFailure(r) ? r.error : r;
    };
    expect(refused('5;a=b\r\nhello\r\n0\r\n\r\n')).toBe('bad_request');
    expect(refused('00000000000000005\r\nhello\r\n0\r\n\r\n')).toBe('bad_request');
    expect(refused('20000000000000\r\n')).toBe('bad_request');
    expect(refused('-5\r\n')).toBe('bad_request');
    expect(refused('5\nhello\r\n0\r\n\r\n')).toBe('bad_request');
    expect(refused('5\r\nhello0\r\n\r\n')).toBe('bad_request');
    expect(refused('0\r\nX: 1\r\n\r\n')).toBe(11);
    expect(refused('0\r\n' + 'X: 1\r\n'.repeat(129) + '\r\n')).toBe('headers_too_large');
    expect(refused('0\r\nX: ' + 'v'.repeat(2000) + '\r\n\r\n', { maxHeaderBytes: 1024, maxFields: 128 })).toBe('headers_too_large');
  });
});
