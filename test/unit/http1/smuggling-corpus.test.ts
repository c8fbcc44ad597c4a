// The classic request-smuggling vectors (CL.TE, TE.CL, TE.TE obfuscations, bad lengths, bad
// chunk sizes, bare line endings, folded lines), each with what llhttp alone does, what the proxy
// does today (llhttp + server.ts's checks), and what our parser does. A number is how many
// requests were read to their end with the connection left usable; 'refused' means the
// connection is refused at that request. Ours must never accept what the proxy refuses today.
import { describe, expect, it } from 'vitest';
import { readLlhttp } from './llhttp-oracle.ts';
import { readOurs, type Outcome } from './outcome.ts';

const LIMITS = { maxHeaderBytes: 16_384, maxFields: 128 };
type Expected = number | 'refused';
const P = 'POST / HTTP/1.1\r\nHost: a\r\n';

// [vector, input, llhttp alone, proxy today, ours]
const CORPUS: [string, string, Expected, Expected, Expected][] = [
  ['CL.TE', P + 'Content-Length: 13\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nSMUGGLED', 'refused', 'refused', 'refused'],
  ['TE.CL', P + 'Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n', 'refused', 'refused', 'refused'],
  ['TE: xchunked', P + 'Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n', 'refused', 'refused', 'refused'],
  ['TE: " chunked" (leading OWS is no obfuscation: RFC 9112 5.1)', P + 'Transfer-Encoding:  chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n', 1, 1, 1],
  ['TE: chunked\\x0b', P + 'Transfer-Encoding: chunked\x0b\r\n\r\n0\r\n\r\n', 'refused', 'refused', 'refused'],
  ['TE: chunked\\t (trailing HTAB)', P + 'Transfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n', 'refused', 'refused', 'refused'],
  ['Transfer-Encoding : chunked', P + 'Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n', 'refused', 'refused', 'refused'],
  ['Transfer-encoding\\t: chunked', P + 'Transfer-encoding\t: chunked\r\n\r\n0\r\n\r\n', 'refused', 'refused', 'refused'],
  ['two TE lines: chunked, chunked', P + 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 'refused', 'refused', 'refused'],
  ['two TE lines: gzip, chunked', P + 'Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 1, 'refused', 'refused'],
  ['TE: chunked, identity', P + 'Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n', 'refused', 'refused', 'refused'],
  ['TE: gzip, chunked', P + 'Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n', 1, 'refused', 'refused'],
  ['TE: identity', P + 'Transfer-Encoding: identity\r\n\r\n', 'refused', 'refused', 'refused'],
  ['Content-Length: 0, 5', P + 'Content-Length: 0, 5\r\n\r\nhello', 'refused', 'refused', 'refused'],
  ['Content-Length: +5', P + 'Content-Length: +5\r\n\r\nhello', 'refused', 'refused', 'refused'],
  ['Content-Length: 0x5', P + 'Content-Length: 0x5\r\n\r\nhello', 'refused', 'refused', 'refused'],
  ['Content-Length: -1', P + 'Content-Length: -1\r\n\r\n', 'refused', 'refused', 'refused'],
  ['Content-Length: 5 5', P + 'Content-Length: 5 5\r\n\r\nhello', 'refused', 'refused', 'refused'],
  ['Content-Length: (empty)', P + 'Content-Length:\r\n\r\n', 'refused', 'refused', 'refused'],
  ['two equal Content-Length', P + 'Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello', 'refused', 'refused', 'refused'],
  ['two differing Content-Length', P + 'Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!', 'refused', 'refused', 'refused'],
  ['Content-Length of 16 digits', P + 'Content-Length: 0000000000000005\r\n\r\nhello', 1, 'refused', 'refused'],
  ['chunk-size 0x5', P + 'Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n', 'refused', 'refused', 'refused'],
  ['chunk-size with trailing SP', P + 'Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n', 'refused', 'refused', 'refused'],
  ['chunk-size overflow ffffffffffffffffff', P + 'Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n', 'refused', 'refused', 'refused'],
  ['5;ext with a 20 KiB extension', P + 'Transfer-Encoding: chunked\r\n\r\n5;a=' + 'x'.repeat(20_000) + '\r\nhello\r\n0\r\n\r\n', 'refused', 'refused', 'refused'],
  ['5;ext (small extension: ours refuses every extension)', P + 'Transfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\n\r\n', 1, 1, 'refused'],
  ['chunk data longer than its size', P + 'Transfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n', 'refused', 'refused', 'refused'],
  ['chunk data LF only', P + 'Transfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n', 'refused', 'refused', 'refused'],
  ['LF-only line endings', 'POST / HTTP/1.1\nHost: a\nContent-Length: 5\n\nhello', 'refused', 'refused', 'refused'],
  ['bare LF in one field line', P + 'X: a\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 'refused', 'refused', 'refused'],
  ['bare CR in a value', P + 'X: a\rTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 'refused', 'refused', 'refused'],
  ['NUL in a value', P + 'X: a\x00b\r\n\r\n', 'refused', 'refused', 'refused'],
  ['DEL in a name', P + 'X\x7f: a\r\n\r\n', 'refused', 'refused', 'refused'],
  ['space-prefixed header line (obs-fold)', P + 'X: a\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 'refused', 'refused', 'refused'],
  ['space-prefixed first header line', 'POST / HTTP/1.1\r\n Transfer-Encoding: chunked\r\nHost: a\r\n\r\n0\r\n\r\n', 'refused', 'refused', 'refused'],
  ['obs-fold in a trailer', P + 'Transfer-Encoding: chunked\r\n\r\n0\r\nX: a\r\n b\r\n\r\n', 'refused', 'refused', 'refused'],
  ['Content-Length in a trailer', P + 'Transfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 5\r\n\r\n', 'refused', 'refused', 'refused'],
  ['Transfer-Encoding in a trailer', P + 'Transfer-Encoding: chunked\r\n\r\n0\r\ntransfer-encoding: chunked\r\n\r\n', 'refused', 'refused', 'refused'],
  ['Connection: close in a trailer, then a request (llhttp closes; ours refuses the trailer)', P + 'Transfer-Encoding: chunked\r\n\r\n0\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n', 'refused', 'refused', 'refused'],
  ['Connection: keep-alive in a trailer (llhttp reads it; ours refuses the trailer)', P + 'Transfer-Encoding: chunked\r\n\r\n0\r\nConnection: keep-alive\r\n\r\n', 1, 1, 'refused'],
  ['a trailer named like one refused (X-Content-Length)', P + 'Transfer-Encoding: chunked\r\n\r\n0\r\nX-Content-Length: 5\r\nConnectio: a\r\n\r\n', 1, 1, 1],
  ['two Host fields', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 1, 'refused', 'refused'],
  ['no Host in HTTP/1.1', 'GET / HTTP/1.1\r\n\r\n', 1, 'refused', 'refused'],
  ['HTTP/0.9 request line (no Host: badFraming)', 'GET /\r\n\r\n', 1, 'refused', 'refused'],
  ['HTTP/2.0 request line', 'GET / HTTP/2.0\r\nHost: a\r\n\r\n', 1, 1, 'refused'],
  ['HTTP/1.2 request line', 'GET / HTTP/1.2\r\nHost: a\r\n\r\n', 'refused', 'refused', 'refused'],
  ['h2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'refused', 'refused', 'refused'],
  ['unknown method', 'FOO / HTTP/1.1\r\nHost: a\r\n\r\n', 'refused', 'refused', 'refused'],
  ['absolute-form target', 'GET http://a/admin HTTP/1.1\r\nHost: a\r\n\r\n', 1, 'refused', 'refused'],
  ['authority-form (CONNECT)', 'CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n', 0, 'refused', 'refused'],
  ['upgrade with a body', 'GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 5\r\n\r\nhello', 0, 'refused', 'refused'],
  ['head over maxHeaderBytes', 'GET / HTTP/1.1\r\nHost: a\r\nX: ' + 'v'.repeat(16_384) + '\r\n\r\n', 'refused', 'refused', 'refused'],
  ['body ends early (connection closes mid-body)', P + 'Content-Length: 10\r\n\r\nhello', 'refused', 'refused', 'refused'],
  ['honest pipelining: a body that looks like a request', P + 'Content-Length: 30\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n', 2, 2, 2],
];

function summary(outcome: Outcome): Expected {
  return outcome.refused ? 'refused' : outcome.bodies.length;
}

describe('request-smuggling corpus', () => {
  it.each(CORPUS)('%s', (_name, input, llhttp, today, ours) => {
    const bytes = Buffer.from(input, 'latin1');
    expect(summary(readLlhttp([bytes], LIMITS.maxHeaderBytes, LIMITS.maxFields, 'llhttp'))).toBe(llhttp);
    expect(summary(readLlhttp([bytes], LIMITS.maxHeaderBytes, LIMITS.maxFields, 'today'))).toBe(today);
    // Whole, and split byte by byte: a split never changes the answer.
    expect(summary(readOurs([bytes], LIMITS))).toBe(ours);
    expect(summary(readOurs([...bytes].map((b) => Buffer.of(b)), LIMITS))).toBe(ours);
    // Never laxer than the proxy today.
    if (today === 'refused') expect(ours).toBe('refused');
  });
});
