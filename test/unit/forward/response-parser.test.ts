// The service's answers are parsed by our own strict HTTP/1.1 response parser. These tests pin
// every framing rule, that any way of splitting the bytes gives the same result, and that no
// input can make it do anything but parse or throw ResponseParseError.
import { describe, expect, it } from 'vitest';
import { split } from '../../support/split.ts';
import fc from 'fast-check';
import { ResponseParseError, ResponseParser } from '../../../src/forward/response-parser.ts';

interface Parsed {
  status: number | undefined;
  headers: string[];
  body: string;
  complete: boolean;
  consumed: number;
  keepAlive: boolean;
}

/** Feeds `pieces` one by one, as reads from a socket would arrive. */
function parse(pieces: (string | Buffer)[], method = 'GET'): Parsed {
  const out: Parsed = { status: undefined, headers: [], body: '', complete: false, consumed: 0, keepAlive: true };
  const parser = new ResponseParser({
    onHead(status, headers) {
      out.status = status;
      out.headers = headers;
    },
    onBody(chunk) {
      out.body += chunk.toString('latin1');
    },
    onComplete() {
      out.complete = true;
    },
  });
  parser.reset(method);
  for (const piece of pieces) {
    const buffer = typeof piece === 'string' ? Buffer.from(piece, 'latin1') : piece;
    out.consumed += parser.execute(buffer);
    if (parser.done) break;
  }
  out.keepAlive = parser.keepAlive;
  return out;
}

function parseError(text: string, method = 'GET'): string {
  try {
    parse([text], method);
  } catch (error) {
    expect(error).toBeInstanceOf(ResponseParseError);
    return (error as Error).message;
  }
  throw new Error(`parsed without error: ${JSON.stringify(text)}`);
}

describe('ResponseParser: framing', () => {
  it('reads a Content-Length body and reports lowercased names with values as sent', () => {
    const r = parse(['HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nX-Thing:  a b \r\n\r\nhello']);
    expect(r).toMatchObject({ status: 200, body: 'hello', complete: true, keepAlive: true });
    expect(r.headers).toEqual(['content-type', 'text/plain', 'content-length', '5', 'x-thing', 'a b']);
  });

  it('reads a chunked body with extensions and trailers, and forwards no trailer', () => {
    const r = parse(['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=x\r\nhello\r\n1\r\n!\r\n0\r\nX-Trailer: t\r\n\r\n']);
    expect(r).toMatchObject({ status: 200, body: 'hello!', complete: true, keepAlive: true });
    expect(r.headers).toEqual(['transfer-encoding', 'chunked']);
  });

  it('knows the answers that have no body: HEAD, 204, 304', () => {
    expect(parse(['HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n'], 'HEAD')).toMatchObject({ body: '', complete: true, keepAlive: true });
    expect(parse(['HTTP/1.1 204 No Content\r\n\r\n'])).toMatchObject({ status: 204, complete: true, keepAlive: true });
    expect(parse(['HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n'])).toMatchObject({ status: 304, complete: true });
  });

  it('skips interim 1xx answers (100 Continue, 103 Early Hints) and reports the final one', () => {
    const r = parse(['HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok']);
    expect(r).toMatchObject({ status: 201, body: 'ok', complete: true });
    expect(r.headers).toEqual(['content-length', '2']);
  });

  it('reads until close when no length is given, and never reuses that connection', () => {
    const parser = new ResponseParser({ onHead: () => undefined, onBody: () => undefined, onComplete: () => undefined });
    parser.reset('GET');
    parser.execute(Buffer.from('HTTP/1.1 200 OK\r\n\r\nsome bytes'));
    expect(parser.readsUntilClose).toBe(true);
    expect(parser.keepAlive).toBe(false);
    parser.finish();
    expect(parser.done).toBe(true);
  });

  it('does not reuse a connection after Connection: close or an HTTP/1.0 answer', () => {
    expect(parse(['HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n']).keepAlive).toBe(false);
    expect(parse(['HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n']).keepAlive).toBe(false);
  });

  it('accepts a status line without a reason phrase, and identical repeated Content-Length', () => {
    expect(parse(['HTTP/1.1 200\r\nContent-Length: 1\r\n\r\nx'])).toMatchObject({ status: 200, body: 'x' });
    expect(parse(['HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx'])).toMatchObject({ body: 'x', complete: true });
  });

  it('stops at the end of the answer: bytes after it are not consumed (the caller drops the connection)', () => {
    const text = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil';
    const r = parse([text]);
    expect(r).toMatchObject({ body: 'ok', complete: true });
    expect(r.consumed).toBe(text.indexOf('okHTTP') + 2);
  });

  it('is incomplete until the last byte of the body arrives', () => {
    expect(parse(['HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhell'])).toMatchObject({ body: 'hell', complete: false });
    expect(parse(['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n'])).toMatchObject({ body: 'hello', complete: false });
  });
});

describe('ResponseParser: refuses ambiguous or broken answers', () => {
  const cases: [string, string][] = [
    ['Content-Length with Transfer-Encoding', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['Transfer-Encoding before Content-Length', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n'],
    ['two different Content-Length values', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd'],
    ['a Content-Length list', 'HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc'],
    ['a signed Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc'],
    ['a huge Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n'],
    ['a transfer coding other than chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n'],
    ['Transfer-Encoding twice', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['an obsolete folded line', 'HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n'],
    ['a bare LF line ending', 'HTTP/1.1 200 OK\nContent-Length: 0\n\n\r\n\r\n'],
    ['a bare CR inside a value', 'HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n'],
    ['a control character in a value', 'HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 0\r\n\r\n'],
    ['a space before the colon', 'HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n'],
    ['a header line without a colon', 'HTTP/1.1 200 OK\r\nNonsense\r\n\r\n'],
    ['HTTP/2 in the status line', 'HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n'],
    ['a two-digit status', 'HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n'],
    ['a 101 never asked for', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n'],
    ['a malformed chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'],
    ['a negative chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n'],
    ['a chunk size too large', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n'],
    ['chunk data longer than its size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n'],
    ['a bare LF after a chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nab\r\n0\r\n\r\n'],
    ['a malformed trailer', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad trailer\r\n\r\n'],
  ];
  for (const [what, text] of cases) {
    it(`refuses ${what}`, () => {
      expect(parseError(text)).not.toBe('');
    });
  }

  it('refuses a head larger than 64 KiB, even when it arrives in small pieces', () => {
    const pieces = ['HTTP/1.1 200 OK\r\n', ...Array.from({ length: 100 }, () => `X-Pad: ${'a'.repeat(1000)}\r\n`)];
    expect(() => parse(pieces)).toThrow(ResponseParseError);
  });

  it('refuses endless interim answers', () => {
    expect(parseError('HTTP/1.1 100 Continue\r\n\r\n'.repeat(20))).toMatch(/interim/);
  });

  it('ends an upgrade request\'s answer at its 101 head (interim answers before it dropped), leaving what follows unread', () => {
    let switched: string[] | undefined;
    let headSeen = false;
    const events = { onHead: () => (headSeen = true), onBody: () => undefined, onComplete: () => undefined, onSwitch: (headers: string[]) => (switched = headers) };
    const parser = new ResponseParser(events);
    parser.reset('GET', true);
    const head = 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n';
    expect(parser.execute(Buffer.from(head.slice(0, 40)))).toBe(40);
    expect(parser.execute(Buffer.from(head.slice(40) + '\x81\x05hello'))).toBe(head.length - 40);
    expect([switched, headSeen, parser.done, parser.keepAlive]).toEqual([['upgrade', 'websocket', 'connection', 'Upgrade'], false, true, false]);
    // Asked for, but with nobody to hand the switch to, a 101 is still out of step.
    const deaf = new ResponseParser({ onHead: () => undefined, onBody: () => undefined, onComplete: () => undefined });
    deaf.reset('GET', true);
    expect(() => deaf.execute(Buffer.from(head))).toThrow(/unexpected 101/);
    // A refusal to an upgrade request is read like any answer.
    parser.reset('GET', true);
    parser.execute(Buffer.from('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n'));
    expect([headSeen, parser.done]).toEqual([true, true]);
  });

  it('refuses a connection that closes before the answer is complete', () => {
    const parser = new ResponseParser({ onHead: () => undefined, onBody: () => undefined, onComplete: () => undefined });
    parser.reset('GET');
    parser.execute(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab'));
    expect(() => parser.finish()).toThrow(ResponseParseError);
  });
});

describe('ResponseParser: properties', () => {

  const bodyText = fc.string({ unit: 'binary-ascii', maxLength: 300 });
  const chunkSizes = fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 8 });

  it('gives the same status, headers and body however the bytes are split', () => {
    fc.assert(
      fc.property(bodyText, chunkSizes, fc.boolean(), fc.array(fc.nat(), { maxLength: 12 }), (body, sizes, chunked, cuts) => {
        let wire = `HTTP/1.1 200 OK\r\nX-A: 1\r\n`;
        if (chunked) {
          wire += 'Transfer-Encoding: chunked\r\n\r\n';
          let rest = body;
          for (const size of sizes) {
            if (rest === '') break;
            const part = rest.slice(0, size);
            rest = rest.slice(size);
            wire += `${part.length.toString(16)}\r\n${part}\r\n`;
          }
          if (rest !== '') wire += `${rest.length.toString(16)}\r\n${rest}\r\n`;
          wire += '0\r\nX-T: 1\r\n\r\n';
        } else {
          wire += `Content-Length: ${body.length}\r\n\r\n${body}`;
        }
        const bytes = Buffer.from(wire, 'latin1');
        const whole = parse([bytes]);
        const pieces = parse(split(bytes, cuts));
        expect(whole).toMatchObject({ status: 200, body, complete: true, consumed: bytes.length });
        expect(pieces).toEqual(whole);
      }),
      { numRuns: 300 },
    );
  });

  it('on arbitrary bytes, only parses or throws ResponseParseError, and never reports more body than it read', () => {
    const prefix = fc.constantFrom('', 'HTTP/1.1 200 OK\r\n', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n');
    fc.assert(
      fc.property(prefix, fc.uint8Array({ maxLength: 200 }), fc.array(fc.nat(), { maxLength: 6 }), (start, tail, cuts) => {
        const bytes = Buffer.concat([Buffer.from(start, 'latin1'), Buffer.from(tail)]);
        try {
          const r = parse(split(bytes, cuts));
          expect(r.consumed).toBeLessThanOrEqual(bytes.length);
          expect(Buffer.byteLength(r.body, 'latin1')).toBeLessThanOrEqual(bytes.length);
        } catch (error) {
          expect(error).toBeInstanceOf(ResponseParseError);
        }
      }),
      { numRuns: 1000 },
    );
  });
});
