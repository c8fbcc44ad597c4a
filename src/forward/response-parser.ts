// A strict, incremental HTTP/1.1 response parser for the service's answers. The service is on the
// other side of our own keep-alive connections, so a framing mistake here would hand one client's
// bytes to the next client: anything ambiguous (Content-Length with Transfer-Encoding, differing
// lengths, obs-fold, bare CR or LF, a bad chunk size, an unknown transfer coding) is an error and
// the connection is dropped, never reused.

import { DelimitedBytes } from './delimited-bytes.ts';
import { BAD_VALUE_READ, FIELD_CHAR, TOKEN, TOKEN_CHAR } from './http-syntax.ts';
import { ResponseParseError } from './parse-error.ts';

export { ResponseParseError };

export interface ResponseEvents {
  /** A final (non-1xx) response head. Header names are lowercased; values as sent. */
  onHead(status: number, headers: string[]): void;
  onBody(chunk: Buffer): void;
  onComplete(): void;
  /**
   * `101 Switching Protocols` to a request that asked for an upgrade (`reset(method, true)`): the
   * answer ends with its head; what follows on the connection is the new protocol's.
   */
  onSwitch?(headers: string[]): void;
}

/** The longest response head (status line and headers) accepted, and the longest trailer section. */
export const MAX_HEAD_BYTES = 64 * 1024;
const MAX_INTERIM_RESPONSES = 16;
export const HEAD_END = Buffer.from('\r\n\r\n');
const CRLF = Buffer.from('\r\n');
const MAX_CHUNK_LINE = 4096;

const DIGITS = /^\d{1,15}$/;
const HEX = /^[0-9a-fA-F]{1,12}$/;

const State = { Head: 0, Body: 1, UntilClose: 2, ChunkSize: 3, ChunkData: 4, ChunkDataEnd: 5, Trailers: 6, Done: 7 } as const;
type State = (typeof State)[keyof typeof State];

export class ResponseParser {
  private readonly events: ResponseEvents;
  private state: State = State.Head;
  /** An unfinished head, chunk-size line or trailer section. */
  private readonly gathered = new DelimitedBytes();
  private remaining = 0;
  private interim = 0;
  private noBody = false;
  /** The request asked to switch protocols: a 101 is its answer, not a broken one. */
  private upgrading = false;
  /** The connection may carry another exchange after this response. */
  keepAlive = true;

  constructor(events: ResponseEvents) {
    this.events = events;
  }

  /** Expects the answer to a request with this method (a HEAD answer has no body), and maybe an upgrade. */
  reset(method: string, upgrading = false): void {
    this.state = State.Head;
    this.upgrading = upgrading && this.events.onSwitch !== undefined;
    this.gathered.clear();
    this.remaining = 0;
    this.interim = 0;
    this.noBody = method === 'HEAD';
    this.keepAlive = true;
  }

  get done(): boolean {
    return this.state === State.Done;
  }

  get awaitingHead(): boolean {
    return this.state === State.Head;
  }

  /** The body runs until the connection closes (no length given). */
  get readsUntilClose(): boolean {
    return this.state === State.UntilClose;
  }

  /** The connection closed: completes a body that runs until close; anything else was cut short. */
  finish(): void {
    if (this.state === State.UntilClose) {
      this.state = State.Done;
      this.events.onComplete();
      return;
    }
    if (this.state !== State.Done) throw new ResponseParseError('connection closed before the response was complete');
  }

  /**
   * Consumes bytes; returns how many belong to this response. Fewer than `data.length` means the
   * response completed and more bytes followed it (the caller must not reuse the connection).
   */
  execute(data: Buffer): number {
    let offset = 0;
    while (offset < data.length) {
      switch (this.state) {
        case State.Head:
          offset = this.readHead(data, offset);
          break;
        case State.Body: {
          const take = Math.min(this.remaining, data.length - offset);
          this.remaining -= take;
          const chunk = take === data.length ? data : data.subarray(offset, offset + take);
          offset += take;
          if (this.remaining === 0) this.state = State.Done;
          this.events.onBody(chunk);
          if (this.state === State.Done) this.events.onComplete();
          break;
        }
        case State.UntilClose:
          this.events.onBody(offset === 0 ? data : data.subarray(offset));
          offset = data.length;
          break;
        case State.ChunkSize:
          offset = this.readChunkSize(data, offset);
          break;
        case State.ChunkData: {
          const take = Math.min(this.remaining, data.length - offset);
          this.remaining -= take;
          const chunk = data.subarray(offset, offset + take);
          offset += take;
          if (this.remaining === 0) {
            this.state = State.ChunkDataEnd;
            this.remaining = 2;
          }
          this.events.onBody(chunk);
          break;
        }
        case State.ChunkDataEnd:
          // The CRLF after a chunk's data, possibly split across reads.
          while (this.remaining > 0 && offset < data.length) {
            const expected = this.remaining === 2 ? 0x0d : 0x0a;
            if (data[offset] !== expected) throw new ResponseParseError('chunk data not followed by CRLF');
            offset++;
            this.remaining--;
          }
          if (this.remaining === 0) this.state = State.ChunkSize;
          break;
        case State.Trailers:
          offset = this.readTrailers(data, offset);
          break;
        case State.Done:
          return offset;
      }
    }
    return offset;
  }

  private readHead(data: Buffer, offset: number): number {
    const found = this.gathered.until(data, offset, HEAD_END, MAX_HEAD_BYTES - 4, 'response head');
    if (found === undefined) return data.length;
    // The head's lines, each with its CRLF (the delimiter's first half ends the last one).
    this.parseHead(found.buf, found.at + 2);
    return offset + found.used;
  }

  /**
   * The status line and header lines in `buf[0, limit)`, each ending in CRLF: one pass over the
   * bytes (no split, no regex per line; this runs once per forwarded request).
   */
  private parseHead(buf: Buffer, limit: number): void {
    // Status line: HTTP/1.x SP 3DIGIT [SP reason-phrase] CRLF
    // One string for the whole head; names and values are slices of it (a C++ call per field costs more).
    const text = buf.toString('latin1', 0, limit);
    if (limit < 14 || !text.startsWith('HTTP/1.') || (buf[7] !== 0x30 && buf[7] !== 0x31) || buf[8] !== 0x20) throw new ResponseParseError('malformed status line');
    const d0 = buf[9]! - 0x30;
    const d1 = buf[10]! - 0x30;
    const d2 = buf[11]! - 0x30;
    if (d0 < 1 || d0 > 9 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) throw new ResponseParseError('malformed status line');
    const status = d0 * 100 + d1 * 10 + d2;
    if (buf[7] === 0x30) this.keepAlive = false;
    let i = 12;
    if (buf[i] === 0x20) {
      i++;
      while (i < limit && FIELD_CHAR[buf[i]!] === 1) i++;
    }
    if (buf[i] !== 0x0d || buf[i + 1] !== 0x0a) throw new ResponseParseError('malformed status line');
    i += 2;
    const headers: string[] = [];
    let contentLength = -1;
    let chunked = false;
    let transferEncoding = false;
    while (i < limit) {
      const nameStart = i;
      let upper = false;
      for (let c = buf[i]!; TOKEN_CHAR[c] === 1; c = buf[++i]!) if (c >= 0x41 && c <= 0x5a) upper = true;
      if (i === nameStart || buf[i] !== 0x3a) throw new ResponseParseError('malformed header line');
      const rawName = text.slice(nameStart, i);
      i++;
      while (buf[i] === 0x20 || buf[i] === 0x09) i++;
      const valueStart = i;
      while (i < limit && FIELD_CHAR[buf[i]!] === 1) i++;
      if (buf[i] !== 0x0d || buf[i + 1] !== 0x0a) throw new ResponseParseError('bare CR or LF, or a control character, in a header line');
      let valueEnd = i;
      while (valueEnd > valueStart && (buf[valueEnd - 1] === 0x20 || buf[valueEnd - 1] === 0x09)) valueEnd--;
      const value = text.slice(valueStart, valueEnd);
      i += 2;
      const name = upper ? rawName.toLowerCase() : rawName;
      if (name === 'content-length') {
        if (!DIGITS.test(value)) throw new ResponseParseError('malformed Content-Length');
        const length = Number(value);
        if (contentLength !== -1 && contentLength !== length) throw new ResponseParseError('conflicting Content-Length values');
        contentLength = length;
      } else if (name === 'transfer-encoding') {
        if (transferEncoding || value.toLowerCase() !== 'chunked') throw new ResponseParseError('unsupported Transfer-Encoding');
        transferEncoding = chunked = true;
      } else if (name === 'connection') {
        // Nearly every answer says just "keep-alive", which has no "close": no RegExp call for it.
        if (value !== 'keep-alive' && /(?:^|,)\s*close\s*(?:,|$)/i.test(value)) this.keepAlive = false;
      }
      headers.push(name, value);
    }
    if (status === 101) {
      // RFC 9110 15.2.2: a switch answers only a request that offered one; anything else is out of step.
      if (!this.upgrading) throw new ResponseParseError('unexpected 101 Switching Protocols');
      this.state = State.Done;
      this.keepAlive = false;
      this.events.onSwitch!(headers);
      return;
    }
    if (status < 200) {
      // Interim answers (100 Continue, 103 Early Hints) are read and dropped.
      if (++this.interim > MAX_INTERIM_RESPONSES) throw new ResponseParseError('too many interim responses');
      return;
    }
    if (chunked && contentLength !== -1) throw new ResponseParseError('both Content-Length and Transfer-Encoding');
    this.events.onHead(status, headers);
    if (this.noBody || status === 204 || status === 304) {
      this.state = State.Done;
      this.events.onComplete();
    } else if (chunked) {
      this.state = State.ChunkSize;
    } else if (contentLength >= 0) {
      this.remaining = contentLength;
      this.state = contentLength === 0 ? State.Done : State.Body;
      if (contentLength === 0) this.events.onComplete();
    } else {
      this.keepAlive = false;
      this.state = State.UntilClose;
    }
  }

  private readChunkSize(data: Buffer, offset: number): number {
    const found = this.gathered.until(data, offset, CRLF, MAX_CHUNK_LINE, 'chunk size line');
    if (found === undefined) return data.length;
    const line = found.buf.toString('latin1', 0, found.at);
    const semicolon = line.indexOf(';');
    const sizeText = semicolon === -1 ? line : line.slice(0, semicolon).trimEnd();
    if (!HEX.test(sizeText)) throw new ResponseParseError('malformed chunk size');
    if (semicolon !== -1 && BAD_VALUE_READ.test(line.slice(semicolon))) throw new ResponseParseError('control character in a chunk extension');
    const size = parseInt(sizeText, 16);
    if (size === 0) {
      // The trailer section ends at an empty line: seeded with the CRLF just read, its end is
      // always a CRLF CRLF, with or without trailer fields.
      this.state = State.Trailers;
      this.gathered.seed(CRLF);
    } else {
      this.state = State.ChunkData;
      this.remaining = size;
    }
    return offset + found.used;
  }

  /** Trailer fields are checked and dropped (we never forward trailers); an empty line ends the message. */
  private readTrailers(data: Buffer, offset: number): number {
    const found = this.gathered.until(data, offset, HEAD_END, MAX_HEAD_BYTES, 'trailer section');
    if (found === undefined) return data.length;
    const text = found.buf.toString('latin1', CRLF.length, found.at);
    if (text !== '') {
      for (const line of text.split('\r\n')) {
        const colon = line.indexOf(':');
        if (colon <= 0 || !TOKEN.test(line.slice(0, colon)) || BAD_VALUE_READ.test(line.slice(colon + 1))) throw new ResponseParseError('malformed trailer line');
      }
    }
    this.state = State.Done;
    this.events.onComplete();
    return offset + found.used;
  }
}
