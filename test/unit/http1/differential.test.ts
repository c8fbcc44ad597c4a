// Issue 15 item 3: our HTTP/1.1 request parser, differentially fuzzed against llhttp (Node's own
// parser, strict, as server.ts runs it) plus the checks server.ts makes after it. For every input
// (well-formed requests with random tokens, values and framing, then byte-level mutations, split
// at random points), both refuse, or both accept the same heads (method, target, version, fields
// as llhttp reports them, framing, keep-alive, upgrade, Expect) and the same decoded bodies, for
// the same number of pipelined requests.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readLlhttp } from './llhttp-oracle.ts';
import { readOurs } from './outcome.ts';
import { split } from '../../support/split.ts';

const LIMITS = { maxHeaderBytes: 2048, maxFields: 128 };
// Bounded for `npm test` (a few seconds); H1_FUZZ_SCALE=20 for a longer hunt by hand.
const SCALE = Number(process.env.H1_FUZZ_SCALE ?? 1);

const tokenChars = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".split('');
const token = fc.array(fc.constantFrom(...tokenChars), { minLength: 1, maxLength: 12 }).map((a) => a.join(''));
const valueChar = fc.oneof(
  { weight: 60, arbitrary: fc.constantFrom(...'abcXYZ019 -_.,;:=/"()[]{}?@\\'.split('')) },
  { weight: 1, arbitrary: fc.constantFrom('\t', ' ', '\x80', '\xa0', '\xff', '\x7f', '\x00', '\x0b') },
);
const value = fc.array(valueChar, { maxLength: 20 }).map((a) => a.join(''));
const pathChar = fc.oneof(
  { weight: 60, arbitrary: fc.constantFrom(...'abc019-._~/%?=&'.split('')) },
  { weight: 1, arbitrary: fc.constantFrom(...'#"<>\\^`{|}[]!$\'()*+,;:@'.split(''), '\x7f', '\x80', '\t', '\x0c') },
);
const target = fc.oneof(
  { weight: 40, arbitrary: fc.array(pathChar, { maxLength: 20 }).map((a) => '/' + a.join('')) },
  { weight: 1, arbitrary: fc.constantFrom('*', 'http://a/b', 'https://a:1/', 'a:443', '?x', '//a', '/a b') },
);
const method = fc.oneof(
  { weight: 30, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'QUERY', 'M-SEARCH') },
  { weight: 1, arbitrary: fc.constantFrom('get', 'FOO', 'CONNECT', 'PRI', 'GET\t', 'G ET') },
);
const version = fc.oneof({ weight: 30, arbitrary: fc.constant('HTTP/1.1') }, { weight: 3, arbitrary: fc.constant('HTTP/1.0') }, { weight: 1, arbitrary: fc.constantFrom('HTTP/1.0', 'HTTP/2.0', 'HTTP/0.9', 'HTTP/1.2', 'http/1.1', 'HTTP/1.1 ', '') });
const caseFlip = (s: string) => fc.array(fc.boolean(), { minLength: s.length, maxLength: s.length }).map((flips) => [...s].map((c, i) => (flips[i] ? c.toUpperCase() : c.toLowerCase())).join(''));

const hexSize = (n: number) => fc.constantFrom(n.toString(16), n.toString(16).toUpperCase(), '0' + n.toString(16));
const chunkedBody = fc.array(fc.string({ minLength: 1, maxLength: 12 }), { maxLength: 3 }).chain((pieces) =>
  fc
    .tuple(...pieces.map((p) => hexSize(p.length)), fc.option(fc.tuple(token, value), { freq: 4 }))
    .map((parts) => {
      const trailer = parts[pieces.length] as [string, string] | null;
      const sizes = parts.slice(0, pieces.length) as string[];
      return pieces.map((p, i) => `${sizes[i]}\r\n${p}\r\n`).join('') + '0\r\n' + (trailer ? `${trailer[0]}: ${trailer[1]}\r\n` : '') + '\r\n';
    }),
);

/** One request: its head lines and its body as framed. */
const request = fc
  .record({
    method,
    target,
    version,
    hosts: fc.oneof({ weight: 30, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.constantFrom(0, 2) }),
    extra: fc.array(fc.tuple(token, value), { maxLength: 4 }),
    framing: fc.oneof(
      { weight: 8, arbitrary: fc.constant<[string, string]>(['none', '']) },
      { weight: 6, arbitrary: fc.string({ maxLength: 10 }).map((b): [string, string] => ['length', b]) },
      { weight: 6, arbitrary: chunkedBody.map((b): [string, string] => ['chunked', b]) },
      {
        weight: 1,
        arbitrary: fc.constantFrom<[string, string]>(
          ['Content-Length: +5', 'hello'], ['Content-Length: 0x5', 'hello'], ['Content-Length: -1', ''], ['Content-Length: 5 5', 'hello'],
          ['Content-Length: 0, 5', 'hello'], ['Content-Length: 5\r\nContent-Length: 5', 'hello'], ['Content-Length:  05 ', 'hello'],
          ['Content-Length: 1234567890123456', ''], ['Content-Length:', ''],
          ['Transfer-Encoding: xchunked', '0\r\n\r\n'], ['Transfer-Encoding: chunked, identity', '0\r\n\r\n'], ['Transfer-Encoding: gzip, chunked', '0\r\n\r\n'],
          ['Transfer-Encoding: identity', ''], ['Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked', '0\r\n\r\n'], ['Transfer-Encoding:  chunked ', '0\r\n\r\n'],
          ['Content-Length: 3\r\nTransfer-Encoding: chunked', '0\r\n\r\n'], ['Transfer-Encoding: chunked', '5 \r\nhello\r\n0\r\n\r\n'], ['Transfer-Encoding: chunked', '5\r\nhello0\r\n\r\n'],
        ),
      },
    ),
    teName: caseFlip('transfer-encoding'),
    teValue: fc.constantFrom('chunked', 'chunked', 'chunked', 'CHUNKED', ' chunked', 'chunked ', 'chunked\t', '\tchunked'),
    clPad: fc.constantFrom('', '', '', ' ', '\t', '0'),
    clName: caseFlip('content-length'),
    connection: fc.oneof({ weight: 12, arbitrary: fc.constant('') }, { weight: 3, arbitrary: fc.constantFrom('upgrade', 'Upgrade, keep-alive') }, { weight: 1, arbitrary: fc.constantFrom('close', 'keep-alive', 'Close', 'close, foo', 'foo close', 'closex', 'keep-alive, close', ' , close', 'upgrade', 'Upgrade, keep-alive', 'up grade') }),
    upgrade: fc.option(fc.constantFrom('websocket', 'h2c', ''), { freq: 3 }),
    expect: fc.option(fc.constantFrom('100-continue', '100-Continue', 'foo', 'x, 100-continue'), { freq: 8 }),
  })
  .map((r) => {
    const lines = [`${r.method} ${r.target} ${r.version}`.replace(/ $/, r.version === '' ? '' : ' ')];
    for (let i = 0; i < r.hosts; i++) lines.push(`Host: h${i}.example`);
    for (const [n, v] of r.extra) lines.push(`${n}: ${v}`);
    if (r.connection !== '') lines.push(`Connection: ${r.connection}`);
    if (r.upgrade !== null) lines.push(`Upgrade: ${r.upgrade}`);
    if (r.expect !== null) lines.push(`Expect: ${r.expect}`);
    const [kind, body] = r.framing;
    if (kind === 'length') lines.push(`${r.clName}:${r.clPad === '0' ? ' 0' : ' '}${body.length}${r.clPad === '0' ? '' : r.clPad}`);
    else if (kind === 'chunked') lines.push(`${r.teName}:${r.teValue}`);
    else if (kind !== 'none') lines.push(kind);
    return lines.join('\r\n') + '\r\n\r\n' + body;
  });

const MUTATION_BYTES = ['\r', '\n', ' ', '\t', '\x00', '\x0b', '\x7f', '\x80', ':', ',', '0', 'a', '\r\n', ' chunked'];
type Mutation = { kind: 'insert'; at: number; text: string } | { kind: 'delete'; at: number } | { kind: 'dupline'; at: number } | { kind: 'case'; at: number };
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.constantFrom(...MUTATION_BYTES) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('dupline' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('case' as const), at: fc.nat() }),
);

function mutate(input: string, mutations: readonly Mutation[]): string {
  let s = input;
  for (const m of mutations) {
    if (s.length === 0) break;
    const at = m.at % s.length;
    if (m.kind === 'insert') s = s.slice(0, at) + m.text + s.slice(at);
    else if (m.kind === 'delete') s = s.slice(0, at) + s.slice(at + 1);
    else if (m.kind === 'case') s = s.slice(0, at) + (s[at] === s[at]!.toUpperCase() ? s[at]!.toLowerCase() : s[at]!.toUpperCase()) + s.slice(at + 1);
    else {
      const start = s.lastIndexOf('\r\n', at) + 2;
      const end = s.indexOf('\r\n', at);
      if (end > start) s = s.slice(0, end + 2) + s.slice(start, end + 2) + s.slice(end + 2);
    }
  }
  return s;
}

function agree(text: string, points: readonly number[]): void {
  const bytes = Buffer.from(text, 'latin1');
  const ours = readOurs(split(bytes, points), LIMITS);
  // llhttp is fed whole: how its input is split does not change what it accepts.
  const theirs = readLlhttp([bytes], LIMITS.maxHeaderBytes, LIMITS.maxFields);
  // On a refusal only the requests read to their end count: llhttp reports a head before some
  // of its own checks refuse it (Transfer-Encoding, in llhttp__after_headers_complete).
  for (const o of [ours, theirs]) if (o.refused) o.heads.length = o.bodies.length;
  if (JSON.stringify(ours) !== JSON.stringify(theirs)) {
    throw new Error(`disagreement on ${JSON.stringify(text)} split at ${JSON.stringify(points)}\nours:   ${JSON.stringify(ours)}\nllhttp: ${JSON.stringify(theirs)}`);
  }
}

const pipeline = fc.array(request, { minLength: 1, maxLength: 3 }).map((rs) => rs.join(''));
const splits = fc.array(fc.nat(), { maxLength: 4 });

describe('HTTP/1.1 request parser, differentially against llhttp + server.ts checks', () => {
  it('is not vacuous: the inputs reach every outcome (accepted, refused, bodies, upgrades, pipelines)', () => {
    const seen = { accepted: 0, refused: 0, bodies: 0, upgrades: 0, pipelined: 0 };
    const sample = fc.sample(fc.tuple(pipeline, fc.array(mutation, { maxLength: 2 })), { numRuns: 1000, seed: 15 });
    for (const [text, ms] of sample) {
      const o = readLlhttp([Buffer.from(mutate(text, ms), 'latin1')], LIMITS.maxHeaderBytes, LIMITS.maxFields);
      if (o.refused) seen.refused++;
      else seen.accepted++;
      if (o.bodies.some((b) => b.length > 0)) seen.bodies++;
      if (o.heads.some((h) => h.upgrade)) seen.upgrades++;
      if (o.bodies.length > 1) seen.pipelined++;
    }
    expect(seen.accepted).toBeGreaterThan(150);
    expect(seen.refused).toBeGreaterThan(150);
    expect(seen.bodies).toBeGreaterThan(100);
    expect(seen.upgrades).toBeGreaterThan(10);
    expect(seen.pipelined).toBeGreaterThan(50);
  });

  it('agrees on generated requests, pipelined and split anywhere', () => {
    fc.assert(fc.property(pipeline, splits, (text, points) => agree(text, points)), { numRuns: 3000 * SCALE });
  });

  it('agrees after byte-level mutations (CR, LF, SP, HTAB, NUL, controls, duplicated lines, case)', () => {
    fc.assert(fc.property(pipeline, fc.array(mutation, { minLength: 1, maxLength: 4 }), splits, (text, ms, points) => agree(mutate(text, ms), points)), { numRuns: 8000 * SCALE });
  });

  it('agrees on heads with long token-like values (the four-bytes-at-a-time scan), mutated', () => {
    const long = fc.tuple(request, fc.array(valueChar, { minLength: 200, maxLength: 700 })).map(([r, v]) => r.replace('\r\n', `\r\nX-Jit-Grant: ${v.join('')}\r\n`));
    fc.assert(fc.property(long, fc.array(mutation, { maxLength: 3 }), splits, (text, ms, points) => agree(mutate(text, ms), points)), { numRuns: 2000 * SCALE });
  });

  it('agrees around the header-size limit (Node counts target, names and values; refused at >= maxHeaderBytes)', () => {
    const sized = fc.tuple(fc.integer({ min: 1900, max: 2100 }), fc.constantFrom('', ' ', '  ', '\t')).map(([n, pad]) => `GET /${'p'.repeat(20)} HTTP/1.1\r\nHost: h\r\nX-Big: ${'v'.repeat(Math.max(0, n - 40))}${pad}\r\n\r\n`);
    fc.assert(fc.property(sized, splits, (text, points) => agree(text, points)), { numRuns: 300 * SCALE });
  });

  it('agrees on many fields around the field limit', () => {
    const many = fc.integer({ min: 120, max: 135 }).map((n) => `GET / HTTP/1.1\r\nHost: h\r\n${Array.from({ length: n - 1 }, (_, i) => `a${i}: 1\r\n`).join('')}\r\n`);
    fc.assert(fc.property(many, splits, (text, points) => agree(text, points)), { numRuns: 50 * SCALE });
  });
});
