// src/http1/connection-reader.ts: one connection's requests from the socket's chunks, split
// anywhere; pause/resume with a bound on what is held; a stop ends everything; nothing read
// after a request that closes the connection; and, differentially, the same requests and
// bodies as llhttp (+ server.ts's checks) when the reader is paused after every head.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ConnectionReader, type PushResult, type ReaderLimits, type ReaderSink } from '../../../src/http1/connection-reader.ts';
import { readLlhttp } from './llhttp-oracle.ts';
import { outcomeSink, type Outcome } from './outcome.ts';
import { split } from '../../support/split.ts';

const LIMITS = { maxHeaderBytes: 2048, maxFields: 128 };

/** Records the events as text; adjacent body slices are joined (how a body is sliced follows the split). */
class Recorder implements ReaderSink {
  readonly events: string[] = [];
  readonly slices: Buffer[] = [];
  onHeadHook: ((reader: ConnectionReader) => void) | undefined;
  reader: ConnectionReader | undefined;
  onHead(head: Parameters<ReaderSink['onHead']>[0]): void {
    this.events.push(`head ${head.method} ${head.target} ${head.framing}${head.framing === 'length' ? ' ' + head.contentLength : ''}${head.keepAlive ? '' : ' close'}`);
    this.onHeadHook?.(this.reader!);
  }
  onBody(data: Buffer): void {
    this.slices.push(data);
    const last = this.events.length - 1;
    if (this.events[last]?.startsWith('body ')) this.events[last] += data.toString('latin1');
    else this.events.push('body ' + data.toString('latin1'));
  }
  onEnd(): void {
    this.events.push('end');
  }
  onStop(stop: { error: string }): void {
    this.events.push('stop ' + stop.error);
  }
}

function reader(limits: ReaderLimits = LIMITS): { r: ConnectionReader; rec: Recorder } {
  const rec = new Recorder();
  const r = new ConnectionReader(limits, rec);
  rec.reader = r;
  return { r, rec };
}

function eventsOf(chunks: readonly Buffer[]): string[] {
  const { r, rec } = reader();
  for (const c of chunks) r.push(c);
  const end = r.finish();
  if (end !== undefined) rec.events.push('finish ' + end.error);
  return rec.events;
}

const PIPELINE =
  'POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world' +
  'PUT /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n' +
  'GET /c HTTP/1.1\r\nHost: h\r\n\r\n';
const EXPECTED = ['head POST /a length 11', 'body hello world', 'end', 'head PUT /b chunked', 'body hello world', 'end', 'head GET /c none', 'end'];

describe('ConnectionReader', () => {
  it('gives the same events for every split of a pipeline (CL, chunked, no body) into two and three chunks', () => {
    const bytes = Buffer.from(PIPELINE, 'latin1');
    expect(eventsOf([bytes])).toEqual(EXPECTED);
    expect(eventsOf([...bytes].map((b) => Buffer.of(b)))).toEqual(EXPECTED);
    for (let i = 0; i <= bytes.length; i++) {
      expect(eventsOf([bytes.subarray(0, i), bytes.subarray(i)])).toEqual(EXPECTED);
      for (let j = i; j <= bytes.length; j += 3) expect(eventsOf([bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)])).toEqual(EXPECTED);
    }
  });

  it('hands a Content-Length body on as views of the chunk pushed, not copies', () => {
    const { r, rec } = reader();
    const chunk = Buffer.from('POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello', 'latin1');
    expect(r.push(chunk)).toBe('reading');
    expect(rec.slices).toHaveLength(1);
    expect(rec.slices[0]!.buffer).toBe(chunk.buffer);
    expect(rec.slices[0]!.byteOffset).toBe(chunk.byteOffset + chunk.length - 5);
  });

  it('pauses after a head: nothing more (not even the end of a bodiless request) until resume, what arrives is held', () => {
    const { r, rec } = reader();
    rec.onHeadHook = (rd) => rd.pause();
    expect(r.push(Buffer.from('GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nab', 'latin1'))).toBe('paused');
    expect(rec.events).toEqual(['head GET /a none']);
    expect(r.heldBytes).toBe(50);
    expect(r.push(Buffer.from('c', 'latin1'))).toBe('paused');
    expect(r.resume()).toBe('paused');
    expect(rec.events).toEqual(['head GET /a none', 'end', 'head POST /b length 3']);
    expect(r.resume()).toBe('reading');
    expect(rec.events).toEqual(['head GET /a none', 'end', 'head POST /b length 3', 'body abc', 'end']);
    expect(r.heldBytes).toBe(0);
    expect(r.finish()).toBeUndefined();
  });

  it('holds at most maxHeldBytes while paused: past it, push answers overflow and takes nothing', () => {
    const { r, rec } = reader({ ...LIMITS, maxHeldBytes: 100 });
    rec.onHeadHook = (rd) => rd.pause();
    expect(r.push(Buffer.from('POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n', 'latin1'))).toBe('paused');
    const piece = Buffer.alloc(40, 0x61);
    expect(r.push(piece)).toBe('paused');
    expect(r.push(piece)).toBe('paused');
    expect(r.heldBytes).toBe(80);
    expect(r.push(piece)).toBe('overflow');
    expect(r.push(piece)).toBe('overflow');
    expect(r.heldBytes).toBe(80);
    // Default bound: 2 × maxHeaderBytes.
    const d = reader();
    d.rec.onHeadHook = (rd) => rd.pause();
    d.r.push(Buffer.from('POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 9000\r\n\r\n', 'latin1'));
    expect(d.r.push(Buffer.alloc(4096))).toBe('paused');
    expect(d.r.push(Buffer.alloc(1))).toBe('overflow');
    // Resumed, the held bytes are read; the refused chunk is pushed again and read after them.
    expect(r.resume()).toBe('reading');
    expect(r.push(piece)).toBe('reading');
    expect(rec.events).toEqual(['head POST /a length 1000', 'body ' + 'a'.repeat(120)]);
  });

  it('resumes from inside a sink callback without reading twice', () => {
    const { r, rec } = reader();
    rec.onHeadHook = (rd) => {
      rd.pause();
      rd.resume();
    };
    expect(r.push(Buffer.from(PIPELINE, 'latin1'))).toBe('reading');
    expect(rec.events).toEqual(EXPECTED);
  });

  it('stops at a refusal, mid-pipeline or mid-body, and emits nothing after it', () => {
    const bad = 'POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nokGET /b HTTP/1.1\r\nHost: h\r\nHost: i\r\n\r\nGET /c HTTP/1.1\r\nHost: h\r\n\r\n';
    expect(eventsOf([Buffer.from(bad, 'latin1')])).toEqual(['head POST /a length 2', 'body ok', 'end', 'stop bad_request']);
    const { r, rec } = reader();
    expect(r.push(Buffer.from('PUT /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nz\r\n', 'latin1'))).toBe('stopped');
    expect(r.push(Buffer.from('GET /c HTTP/1.1\r\nHost: h\r\n\r\n', 'latin1'))).toBe('stopped');
    expect(r.resume()).toBe('stopped');
    expect(rec.events).toEqual(['head PUT /a chunked', 'body abc', 'stop bad_request']);
    expect(eventsOf([Buffer.from('GET / HTTP/1.1\r\nHost: h\r\nX: ' + 'v'.repeat(5000) + '\r\n\r\n', 'latin1')])).toEqual(['stop headers_too_large']);
    expect(eventsOf([Buffer.from('GET /%zz\x01 HTTP/1.1\r\nHost: h\r\n\r\n', 'latin1')])).toEqual(['stop bad_target']);
    // Trailers are bounded like a head.
    const trailers = 'PUT /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n' + 'X-T: 1\r\n'.repeat(200) + '\r\n';
    expect(eventsOf([Buffer.from(trailers, 'latin1')])).toEqual(['head PUT /a chunked', 'stop headers_too_large']);
  });

  it('reads nothing after a request that closes the connection but empty lines', () => {
    const close = 'GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n';
    expect(eventsOf([Buffer.from(close + '\r\n\r\n', 'latin1')])).toEqual(['head GET /a none close', 'end']);
    expect(eventsOf([Buffer.from(close + '\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n', 'latin1')])).toEqual(['head GET /a none close', 'end', 'stop bytes_after_close']);
    expect(eventsOf([Buffer.from('POST /a HTTP/1.0\r\nContent-Length: 2\r\n\r\nokGET /b HTTP/1.0\r\n\r\n', 'latin1')])).toEqual(['head POST /a length 2 close', 'body ok', 'end', 'stop bytes_after_close']);
    expect(eventsOf([Buffer.from('GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n', 'latin1')])).toEqual(['head GET /a none', 'end', 'head GET /b none close', 'end']);
  });

  it('hands the bytes after an upgrade head over, and reads no more', () => {
    const { r, rec } = reader();
    const up = 'GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n';
    expect(r.push(Buffer.from(up + '\x81\x00', 'latin1'))).toBe('stopped');
    expect(r.push(Buffer.from('more', 'latin1'))).toBe('stopped');
    expect(rec.events).toEqual(['head GET /ws none']);
    expect(Buffer.concat(r.takeUpgraded()).toString('latin1')).toBe('\x81\x00');
    expect(r.finish()).toBeUndefined();
  });

  it('reports a connection that ends mid-request as incomplete', () => {
    expect(eventsOf([Buffer.from('POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhel', 'latin1')])).toEqual(['head POST /a length 5', 'body hel', 'finish incomplete']);
    expect(eventsOf([Buffer.from('GET /a HTTP/1.1\r\nHo', 'latin1')])).toEqual(['finish incomplete']);
    expect(eventsOf([Buffer.from('\r\n', 'latin1')])).toEqual([]);
  });
});

// ---- differential: paused after every head, resumed at random later pushes, a small hold bound
const PIECES = [
  'GET / HTTP/1.1\r\nHost: h\r\n\r\n',
  'POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello',
  'PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: v\r\n\r\n',
  'GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
  'GET /o HTTP/1.0\r\n\r\n',
  'GET /k HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok',
  'GET /u HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n',
  'POST /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc',
  '\r\n',
];
const BYTES = ['\r', '\n', ' ', '\t', '\x00', '\x7f', ':', '0', 'a', '\r\n', 'Content-Length: 1\r\n', 'Transfer-Encoding: chunked\r\n'];
const input = fc
  .tuple(
    fc.array(fc.constantFrom(...PIECES), { minLength: 1, maxLength: 4 }),
    fc.array(fc.tuple(fc.nat(), fc.oneof(fc.constantFrom(...BYTES), fc.constant(''))), { maxLength: 3 }),
  )
  .map(([pieces, edits]) => {
    let s = pieces.join('');
    // '' deletes a byte; anything else is inserted.
    for (const [at, text] of edits) s = text === '' ? s.slice(0, at % s.length) + s.slice((at % s.length) + 1) : s.slice(0, at % (s.length + 1)) + text + s.slice(at % (s.length + 1));
    return s;
  });

/** How often the paths under test were taken: a reader that never paused or overflowed would agree with llhttp for nothing. */
interface Seen {
  paused: number;
  overflow: number;
}

function readPaused(chunks: readonly Buffer[], resumeAt: readonly boolean[], seen: Seen): Outcome {
  const outcome: Outcome = { heads: [], bodies: [], refused: false };
  const r: ConnectionReader = new ConnectionReader({ ...LIMITS, maxHeldBytes: 16 }, outcomeSink(outcome, () => r.pause()));
  let result: PushResult = 'reading';
  for (let k = 0; k < chunks.length && result !== 'stopped'; k++) {
    result = r.push(chunks[k]!);
    if (result === 'paused') seen.paused++;
    // Overflow: the chunk was not taken; as the socket would be, it is paused until the reader resumes.
    while (result === 'overflow') {
      seen.overflow++;
      r.resume();
      result = r.push(chunks[k]!);
    }
    if (result === 'paused' && resumeAt[k % resumeAt.length]) result = r.resume();
  }
  while (r.isPaused && result !== 'stopped') result = r.resume();
  if (!outcome.refused && r.finish() !== undefined) outcome.refused = true;
  return outcome;
}

describe('ConnectionReader, paused after every head, differentially against llhttp + server.ts checks', () => {
  it('reads the same requests and bodies, and refuses the same inputs', () => {
    const seen: Seen = { paused: 0, overflow: 0 };
    fc.assert(
      fc.property(input, fc.array(fc.nat(), { maxLength: 8 }), fc.array(fc.boolean(), { minLength: 1, maxLength: 4 }), (text, points, resumeAt) => {
        const bytes = Buffer.from(text, 'latin1');
        const ours = readPaused(split(bytes, points), resumeAt, seen);
        const theirs = readLlhttp([bytes], LIMITS.maxHeaderBytes, LIMITS.maxFields);
        // As differential.test.ts: on a refusal only the requests read to their end count.
        for (const o of [ours, theirs]) if (o.refused) o.heads.length = o.bodies.length;
        expect(ours).toEqual(theirs);
      }),
      { numRuns: 3000 },
    );
    // Not vacuous: chunks arrived while paused (held), and past the hold bound (pushed again).
    expect(seen.paused).toBeGreaterThan(500);
    expect(seen.overflow).toBeGreaterThan(100);
  });
});
