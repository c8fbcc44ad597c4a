// One HTTP/1.1 connection's requests, read from the socket's chunks as they arrive (split
// anywhere): a head, its body as its framing says (RFC 9112 6.3), the body's end, then the next
// pipelined head; or one stop and nothing more. The state machine the wiring puts between the
// TLS socket and the Exchange (issue 15 item 3): http1-connection.ts drives it.
// - Body data is handed on as views of the chunks pushed (no copy), except for bytes the reader
//   had to hold while paused (copied once: the socket's buffer may be reused).
// - Back-pressure: `pause()` (e.g. in `onHead`, while the decision is made, or while the
//   upstream is full) stops the events at the next boundary; bytes pushed meanwhile are held up
//   to `maxHeldBytes` (2 × maxHeaderBytes unless given), and past it `push` answers 'overflow'
//   without taking the chunk instead of growing: the caller pauses the socket and pushes that
//   chunk again after `resume()`. A chunk pushed with nothing held is always taken, so the bound
//   is the larger of maxHeldBytes and one chunk's remainder.
// - After a request that closes the connection (`Connection: close`, HTTP/1.0 without
//   keep-alive: `keepAlive` false, as llhttp_should_keep_alive), empty lines are skipped as
//   llhttp skips them; any other byte stops the reader with `bytes_after_close` (llhttp's
//   HPE_CLOSED_CONNECTION): it is never read as a request.
// - After an upgrade head, the bytes that follow belong to the new protocol: `takeUpgraded()`.
import { ChunkedDecoder, MORE } from './chunked-decoder.ts';
import { failure, isFailure, type Http1Failure } from './failure.ts';
import { RequestHeadParser, type HeadLimits } from './head-parser.ts';
import type { RequestHead } from './request-head.ts';

/** What the reader hands on; one sink per connection (no closures per request). */
export interface ReaderSink {
  onHead(head: RequestHead): void;
  /** Body data in order: views valid until the caller reuses the chunk pushed. */
  onBody(data: Buffer): void;
  /** The body of the last head is whole (also right after a head without a body). */
  onEnd(): void;
  /** A refusal: nothing follows; the caller answers it (see failure.ts) and closes the connection. */
  onStop(stop: Http1Failure): void;
}

export interface ReaderLimits extends HeadLimits {
  /** Bytes held while paused before `push` answers 'overflow'; default 2 × maxHeaderBytes. */
  readonly maxHeldBytes?: number;
}

/**
 * What `push` did with the chunk: 'reading' (taken, events emitted), 'paused' (taken and held),
 * 'overflow' (paused and full: NOT taken, push it again after `resume`), 'stopped' (the reader
 * has stopped or upgraded: not taken).
 */
export type PushResult = 'reading' | 'paused' | 'overflow' | 'stopped';

const CR = 0x0d;
const LF = 0x0a;
const State = { Head: 0, Length: 1, Chunked: 2, Ending: 3, Closed: 4, Upgraded: 5, Stopped: 6 } as const;

export class ConnectionReader {
  private readonly sink: ReaderSink;
  private readonly heads: RequestHeadParser;
  private readonly decoder: ChunkedDecoder;
  private readonly maxHeld: number;
  private state: number = State.Head;
  private remaining = 0;
  private keepAlive = true;
  private paused = false;
  private running = false;
  /** Bytes taken while paused (or after an upgrade head), in order; ours (copies). */
  private held: Buffer[] = [];
  private heldLength = 0;

  constructor(limits: ReaderLimits, sink: ReaderSink) {
    this.sink = sink;
    this.heads = new RequestHeadParser(limits);
    this.decoder = new ChunkedDecoder(limits, (slice) => sink.onBody(slice));
    this.maxHeld = limits.maxHeldBytes ?? limits.maxHeaderBytes * 2;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** Bytes taken and not yet read to an event: held, or part of a head not yet whole. */
  get pendingBytes(): number {
    return this.heldLength + this.heads.buffered;
  }

  /** Part of a head has been read, and the rest is awaited. */
  get partialHead(): boolean {
    return this.state === State.Head && this.heads.buffered > 0;
  }

  /** Bytes held, not yet read (while paused, or after an upgrade head). */
  get heldBytes(): number {
    return this.heldLength;
  }

  push(chunk: Buffer): PushResult {
    if (this.state === State.Stopped || this.state === State.Upgraded) return 'stopped';
    if (this.paused) {
      if (this.heldLength > 0 && this.heldLength + chunk.length > this.maxHeld) return 'overflow';
      this.hold(chunk, 0, false);
      return 'paused';
    }
    this.run(chunk, 0, false);
    return this.result();
  }

  /** No events past the current one until `resume` (a chunked body: past the current chunk). */
  pause(): void {
    this.paused = true;
  }

  /** Reads what was held, then what is pushed next. Answers as `push` would for the held bytes. */
  resume(): PushResult {
    this.paused = false;
    // Called from a sink callback: the read under way goes on by itself.
    if (this.running || this.state === State.Upgraded || this.state === State.Stopped) return this.result();
    const chunks = this.held;
    this.held = [];
    this.heldLength = 0;
    if (chunks.length === 0 && this.state === State.Ending) this.run(Buffer.alloc(0), 0, true);
    for (let k = 0; k < chunks.length; k++) {
      this.run(chunks[k]!, 0, true);
      if (this.state === State.Stopped) break;
      if (this.paused || this.state === State.Upgraded) {
        for (let r = k + 1; r < chunks.length; r++) this.hold(chunks[r]!, 0, true);
        break;
      }
    }
    return this.result();
  }

  /**
   * The socket ended: a failure if a request was under way or bytes are held unread
   * (llhttp_finish's HPE_INVALID_EOF_STATE), else undefined. Nothing is emitted; the reader stops.
   */
  finish(): Http1Failure | undefined {
    const state = this.state;
    const clean =
      state === State.Upgraded || state === State.Stopped ||
      (this.heldLength === 0 && ((state === State.Head && this.heads.buffered === 0) || state === State.Ending || state === State.Closed));
    if (state !== State.Upgraded) this.state = State.Stopped;
    return clean ? undefined : failure('incomplete', 'the connection ended in the middle of a request');
  }

  /** After an upgrade head: the bytes that followed it (the new protocol's), handed over once. */
  takeUpgraded(): Buffer[] {
    if (this.state !== State.Upgraded) return [];
    const chunks = this.held;
    this.held = [];
    this.heldLength = 0;
    return chunks;
  }

  private result(): PushResult {
    if (this.state === State.Stopped || this.state === State.Upgraded) return 'stopped';
    return this.paused ? 'paused' : 'reading';
  }

  private hold(chunk: Buffer, from: number, owned: boolean): void {
    if (from >= chunk.length) return;
    const part = owned ? chunk.subarray(from) : Buffer.from(chunk.subarray(from));
    this.held.push(part);
    this.heldLength += part.length;
  }

  private stop(stop: Http1Failure): void {
    this.state = State.Stopped;
    this.held = [];
    this.heldLength = 0;
    this.sink.onStop(stop);
  }

  /** Reads `chunk` from `pos` until it is used up, the reader pauses (the rest is held) or stops. */
  private run(chunk: Buffer, pos: number, owned: boolean): void {
    this.running = true;
    try {
      const end = chunk.length;
      for (;;) {
        if (this.paused) {
          this.hold(chunk, pos, owned);
          return;
        }
        if (this.state === State.Ending) {
          this.state = this.keepAlive ? State.Head : State.Closed;
          this.sink.onEnd();
          continue;
        }
        if (pos >= end) return;
        switch (this.state) {
          case State.Head: {
            const head = this.heads.push(chunk, pos);
            if (head === undefined) return;
            if (isFailure(head)) return this.stop(head);
            pos = head.consumed;
            this.keepAlive = head.keepAlive;
            if (head.upgrade) {
              this.state = State.Upgraded;
              this.hold(chunk, pos, owned);
              this.sink.onHead(head);
              return;
            }
            if (head.framing === 'chunked') {
              this.decoder.reset();
              this.state = State.Chunked;
            } else if (head.framing === 'length' && head.contentLength > 0) {
              this.remaining = head.contentLength;
              this.state = State.Length;
            } else {
              this.state = State.Ending;
            }
            this.sink.onHead(head);
            break;
          }
          case State.Length: {
            const take = Math.min(this.remaining, end - pos);
            this.remaining -= take;
            if (this.remaining === 0) this.state = State.Ending;
            this.sink.onBody(chunk.subarray(pos, pos + take));
            pos += take;
            break;
          }
          case State.Chunked: {
            const at = this.decoder.push(chunk, pos);
            if (at === MORE) return;
            if (isFailure(at)) return this.stop(at);
            pos = at;
            this.state = State.Ending;
            break;
          }
          case State.Closed:
            // RFC 9112 9.6: nothing after a request that closes the connection is read; llhttp skips empty lines there.
            if (chunk[pos] !== CR && chunk[pos] !== LF) return this.stop(failure('bytes_after_close', 'bytes after a request that closes the connection'));
            pos++;
            break;
          default:
            return;
        }
      }
    } finally {
      this.running = false;
    }
  }
}
