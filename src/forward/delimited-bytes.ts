// Bytes gathered across reads up to a delimiter (a head's CRLFCRLF, a chunk-size line's CRLF).
// Pieces are joined once, when the delimiter is found, so a service sending its head a byte at a
// time costs linear, not quadratic, work; and what may be gathered is bounded.
import { ResponseParseError } from './parse-error.ts';

const EMPTY = Buffer.alloc(0);

export interface Delimited {
  /** The gathered bytes (any seed first), then the rest of the read; the delimiter starts at `at`. */
  readonly buf: Buffer;
  readonly at: number;
  /** How many bytes of the read (from its offset) were used, delimiter included. */
  readonly used: number;
}

export class DelimitedBytes {
  private pieces: Buffer[] = [];
  private length = 0;
  /** The last (delimiter length - 1) bytes gathered: the delimiter may straddle the next read. */
  private tail: Buffer = EMPTY;

  clear(): void {
    this.pieces = [];
    this.length = 0;
    this.tail = EMPTY;
  }

  /** Starts the next search as if `bytes` had been read already (they count for the search only). */
  seed(bytes: Buffer): void {
    this.pieces = [bytes];
    this.length = bytes.length;
    this.tail = bytes;
  }

  /**
   * Looks for `delimiter` in what was gathered plus `data[offset..]`; undefined when it has not
   * arrived yet (then all of `data` is kept). At most `max` bytes may come before the delimiter;
   * beyond that, `what` is too large.
   */
  until(data: Buffer, offset: number, delimiter: Buffer, max: number, what: string): Delimited | undefined {
    const rest = offset === 0 ? data : data.subarray(offset);
    const carried = this.length;
    let at = -1;
    if (carried > 0) {
      const seam = Buffer.concat([this.tail, rest.subarray(0, delimiter.length - 1)]);
      const found = seam.indexOf(delimiter);
      if (found !== -1) at = carried - this.tail.length + found;
    }
    if (at === -1) {
      const found = rest.indexOf(delimiter);
      if (found !== -1) at = carried + found;
    }
    if (at === -1) {
      // Up to (delimiter length - 1) of these bytes may yet turn out to start the delimiter.
      if (carried + rest.length - (delimiter.length - 1) > max) throw new ResponseParseError(`${what} too large`);
      const copy = Buffer.from(rest);
      this.pieces.push(copy);
      this.length += copy.length;
      const joined = Buffer.concat([this.tail, copy]);
      this.tail = joined.subarray(Math.max(0, joined.length - (delimiter.length - 1)));
      return undefined;
    }
    if (at > max) throw new ResponseParseError(`${what} too large`);
    const buf = carried === 0 ? rest : Buffer.concat([...this.pieces, rest]);
    this.clear();
    return { buf, at, used: at + delimiter.length - carried };
  }
}
