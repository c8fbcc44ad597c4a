// The chunked request body (RFC 9112 7.1), decoded incrementally: the data is handed on as
// slices of the chunks read (no copy), everything else is checked and dropped. Stricter than
// llhttp where a proxy gains nothing from leniency:
// - chunk-size: 1 to 16 hex digits and below 2^53 (llhttp: any count, below 2^64; a length we
//   could not count exactly in a JS number is refused);
// - chunk extensions (`5;name=value`) are refused: nothing we forward carries them, and they are
//   the classic place for a parser disagreement (llhttp bounds them at 16 KiB per chunk);
// - CRLF exactly after the size, after the data and after each trailer line (llhttp strict);
// - trailer fields as strict as header fields (tchar name, colon, HTAB/SP/VCHAR/obs-text value,
//   no obs-fold), at most maxFields of them and fewer than maxHeaderBytes of their bytes, then dropped;
// - a Content-Length or Transfer-Encoding trailer (RFC 9110 6.5.1: framing is never a trailer;
//   llhttp strict refuses both) and a Connection trailer (llhttp reads its `close` and closes
//   the connection after the body; we refuse it, stricter: no field after the head changes framing).
import { FIELD_CHAR, TOKEN_CHAR } from '../forward/http-syntax.ts';
import { failure, type Http1Failure } from './failure.ts';
import type { HeadLimits } from './head-parser.ts';

/** A chunked body goes on: every byte of the chunk was taken. */
export const MORE = -1;

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;
const SEMICOLON = 0x3b;
const MAX_SIZE_DIGITS = 16;
/** Trailer names refused, lower-case; matched byte by byte as the name arrives (it may straddle chunks). */
const REFUSED_TRAILERS = ['content-length', 'transfer-encoding', 'connection'];
const ALL_REFUSED = (1 << REFUSED_TRAILERS.length) - 1;

const HEX_VALUE = new Int8Array(256).fill(-1);
for (let c = 0; c < 10; c++) HEX_VALUE[0x30 + c] = c;
for (let c = 0; c < 6; c++) HEX_VALUE[0x41 + c] = HEX_VALUE[0x61 + c] = 10 + c;

// Where the decoder is in the body (RFC 9112 7.1 chunked-body grammar).
const State = { SizeStart: 0, Size: 1, SizeLf: 2, Data: 3, DataCr: 4, DataLf: 5, TrailerStart: 6, TrailerName: 7, TrailerValue: 8, TrailerLf: 9, EndLf: 10 } as const;

/** Receives the body's data, in order, as slices of the chunks pushed (valid until the caller reuses them). */
export type BodyData = (slice: Buffer) => void;

export class ChunkedDecoder {
  private readonly limits: HeadLimits;
  private readonly onData: BodyData;
  private state: number = State.SizeStart;
  private size = 0;
  private digits = 0;
  private remaining = 0;
  private trailerFields = 0;
  private trailerBytes = 0;
  /** Of the trailer name being read: its length so far, and which REFUSED_TRAILERS it still matches (bits). */
  private nameLength = 0;
  private nameMatches = 0;

  /** One decoder per connection, `reset` for each chunked request. */
  constructor(limits: HeadLimits, onData: BodyData) {
    this.limits = limits;
    this.onData = onData;
  }

  reset(): void {
    this.state = State.SizeStart;
    this.size = this.digits = this.remaining = this.trailerFields = this.trailerBytes = 0;
  }

  /**
   * Decodes `chunk` from `start`: the index just past the body's last byte (the next request
   * starts there), MORE if the body goes on, or a failure (the connection must close).
   */
  push(chunk: Buffer, start: number): number | Http1Failure {
    const end = chunk.length;
    let i = start;
    while (i < end) {
      const c = chunk[i]!;
      switch (this.state) {
        case State.SizeStart:
          if (HEX_VALUE[c]! < 0) return failure('bad_request', 'chunk size: hex digit expected');
          this.size = HEX_VALUE[c]!;
          this.digits = 1;
          this.state = State.Size;
          break;
        case State.Size:
          if (HEX_VALUE[c]! >= 0) {
            this.size = this.size * 16 + HEX_VALUE[c]!;
            if (++this.digits > MAX_SIZE_DIGITS || this.size > Number.MAX_SAFE_INTEGER) return failure('bad_request', 'chunk size too large');
          } else if (c === CR) {
            this.state = State.SizeLf;
          } else {
            return failure('bad_request', c === SEMICOLON ? 'chunk extensions are refused' : 'chunk size: byte 0x' + c.toString(16));
          }
          break;
        case State.SizeLf:
          if (c !== LF) return failure('bad_request', 'chunk size: CR without LF');
          if (this.size === 0) {
            this.state = State.TrailerStart;
          } else {
            this.remaining = this.size;
            this.state = State.Data;
          }
          break;
        case State.Data: {
          const take = Math.min(this.remaining, end - i);
          this.onData(chunk.subarray(i, i + take));
          this.remaining -= take;
          i += take;
          if (this.remaining === 0) this.state = State.DataCr;
          continue;
        }
        case State.DataCr:
          if (c !== CR) return failure('bad_request', 'chunk data: CRLF expected after it');
          this.state = State.DataLf;
          break;
        case State.DataLf:
          if (c !== LF) return failure('bad_request', 'chunk data: CR without LF');
          this.state = State.SizeStart;
          break;
        case State.TrailerStart:
          if (c === CR) {
            this.state = State.EndLf;
          } else if (TOKEN_CHAR[c] === 1) {
            if (++this.trailerFields > this.limits.maxFields) return failure('headers_too_large', 'too many trailer fields');
            this.count();
            this.nameLength = 0;
            this.nameMatches = ALL_REFUSED;
            this.matchName(c);
            this.state = State.TrailerName;
          } else {
            return failure('bad_request', c === SP || c === HTAB ? 'trailer: obs-fold' : 'trailer: bad field name');
          }
          break;
        case State.TrailerName:
          if (c === COLON) {
            for (let k = 0; k < REFUSED_TRAILERS.length; k++) {
              if ((this.nameMatches & (1 << k)) !== 0 && REFUSED_TRAILERS[k]!.length === this.nameLength) return failure('bad_request', 'trailer: ' + REFUSED_TRAILERS[k]! + ' is refused there');
            }
            this.state = State.TrailerValue;
          } else if (TOKEN_CHAR[c] === 1) {
            this.count();
            this.matchName(c);
          } else return failure('bad_request', 'trailer field name: byte 0x' + c.toString(16));
          break;
        case State.TrailerValue:
          if (c === CR) this.state = State.TrailerLf;
          else if (FIELD_CHAR[c] === 1) this.count();
          else return failure('bad_request', 'trailer field value: byte 0x' + c.toString(16));
          break;
        case State.TrailerLf:
          if (c !== LF) return failure('bad_request', 'trailer: CR without LF');
          this.state = State.TrailerStart;
          break;
        case State.EndLf:
          if (c !== LF) return failure('bad_request', 'chunked body: CR without LF at its end');
          return i + 1;
      }
      if (this.trailerBytes >= this.limits.maxHeaderBytes) return failure('headers_too_large', 'trailers too large');
      i++;
    }
    return MORE;
  }

  private matchName(c: number): void {
    const lower = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
    const n = this.nameLength++;
    for (let k = 0; k < REFUSED_TRAILERS.length; k++) if (REFUSED_TRAILERS[k]!.charCodeAt(n) !== lower) this.nameMatches &= ~(1 << k);
  }

  private count(): void {
    this.trailerBytes++;
  }
}
