// The fleet's revocation bus (SPEC "Fleet-wide revocation", revocation.source: redis): one Redis
// Stream every sidecar reads whole at start (XRANGE in pages), then follows (XREAD BLOCK from
// the last id read). After a disconnect it reconnects with backoff and reads on from the last id
// read, so nothing published meanwhile is missed; if the stream no longer holds that id's
// successors (trimmed past revocation.retain, or Redis restarted empty) it says so (log and
// portcullis_revocation_bus_gaps_total) and reads from the start, forgetting nothing it holds.
// Freshness (SPEC step 7): every successful read, once the stream has been read whole, moves
// `freshUntil` to now + maxStaleness; the request path compares that number with its clock and
// never awaits Redis. The blocking read returns at most every maxStaleness / 3, so a quiet
// stream still proves the bus alive; a read with no answer at all within its block time plus the
// connect timeout drops the connection (a silent network partition) and tries again.
// The blocking read has its own connection, as blocking commands need; XADD uses another.
import { compareStreamIds, entryFields, parseEntry, streamIdTime, type RevocationEntry } from './entry.ts';
import { connectRedis, describeError, dropConnection, redactUrl, scrub, type RedisConnection, type RedisSettings } from './redis-connection.ts';
import type { Logger } from '../telemetry/logger.ts';

export interface BusMetrics {
  readonly revocationBusRead: { inc(): void };
  readonly revocationBusSkipped: { inc(): void };
  readonly revocationBusGaps: { inc(): void };
}

export interface RedisBusOptions extends RedisSettings {
  readonly stream: string;
  readonly maxStalenessMs: number;
  readonly retainMs: number;
  /** Entries per XRANGE page and per XREAD. */
  readonly pageSize?: number;
  /** Applies one well-formed entry; `live` is false for the backlog read at start. */
  readonly onEntry: (entry: RevocationEntry, id: string, atMs: number, live: boolean) => void;
  /** Told whenever freshness moves: until when what is held may be trusted (epoch ms). */
  readonly onFresh: (freshUntilMs: number) => void;
  readonly logger: Logger;
  readonly metrics: BusMetrics;
}

export type BusState = 'connecting' | 'reading' | 'up' | 'down' | 'stopped';

interface StreamMessage {
  readonly id: string;
  readonly message: Record<string, string>;
}

/** Entries of an XRANGE or XREAD reply, whatever node-redis wrapped them in. */
function messagesOf(reply: unknown): StreamMessage[] {
  if (!Array.isArray(reply)) return [];
  const out: StreamMessage[] = [];
  for (const item of reply as unknown[]) {
    if (item && typeof item === 'object' && 'messages' in item) out.push(...messagesOf((item as { messages: unknown }).messages));
    else if (item && typeof item === 'object' && 'id' in item && 'message' in item) {
      const { id, message } = item as { id: unknown; message: unknown };
      const fields: Record<string, string> = {};
      if (message && typeof message === 'object') for (const [k, v] of Object.entries(message)) fields[k] = String(v);
      out.push({ id: String(id), message: fields });
    }
  }
  return out;
}

/** Stream fields as one comparable string (field order as written). */
function fieldsKey(fields: Record<string, string>): string {
  return JSON.stringify(Object.entries(fields).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

export class RedisRevocationBus {
  private readonly o: RedisBusOptions;
  private readonly pageSize: number;
  private readonly blockMs: number;
  private reader: RedisConnection | undefined;
  private writer: RedisConnection | undefined;
  private writerConnecting: Promise<RedisConnection> | undefined;
  private running = false;
  private loopDone: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  /** The last id read (applied or skipped): where a resumed read starts; '0-0': none yet. */
  lastId = '0-0';
  /** Whether the read now under way starts over after a gap (for its log line). */
  private fromStart = false;
  /** When the stream was last read successfully (epoch ms; 0: never). */
  lastReadMs = 0;
  /** Whether the stream has been read whole since the last (re)connect. */
  private caughtUp = false;
  /** Whether the backlog at start has been read: entries after it are live. */
  private startedLive = false;
  private lastProblem: string | undefined;
  state: BusState = 'connecting';
  /** Ids this sidecar published and applied itself: the reader skips them once. */
  private readonly appliedHere = new Set<string>();
  /**
   * Entries this sidecar is publishing: the reader may see one before XADD's own answer arrives
   * (they are two connections); it then leaves it to the publisher (origin admin, applied once).
   */
  private readonly publishing: { readonly key: string; taken: boolean }[] = [];

  constructor(options: RedisBusOptions) {
    this.o = options;
    this.pageSize = options.pageSize ?? 1_000;
    this.blockMs = Math.max(10, Math.min(5_000, Math.floor(options.maxStalenessMs / 3)));
  }

  /** Whether a privileged decision may trust what is held (SPEC step 7). */
  freshUntilMs(): number {
    return this.caughtUp || this.startedLive ? this.lastReadMs + this.o.maxStalenessMs : 0;
  }

  /** Why the bus is not fresh now (for /readyz), or undefined. */
  notReadyReason(now = Date.now()): string | undefined {
    if (!this.startedLive) return `revocation bus: the stream has not been read whole yet${this.lastProblem ? ` (${this.lastProblem})` : ''}`;
    if (now >= this.freshUntilMs()) return `revocation bus stale: not read for ${Math.round((now - this.lastReadMs) / 100) / 10}s (revocation.maxStaleness ${this.o.maxStalenessMs}ms)${this.lastProblem ? `: ${this.lastProblem}` : ''}`;
    return undefined;
  }

  /**
   * The last entry id read, as the log lines and GET /admin/revocations both show it: null
   * while none has been read (at start on an empty stream, or since a gap), never Redis's `0-0`.
   */
  lastEntryId(): string | null {
    return this.lastId === '0-0' ? null : this.lastId;
  }

  /** For GET /admin/revocations. */
  describe(now = Date.now()): Record<string, unknown> {
    return {
      url: redactUrl(this.o.url),
      stream: this.o.stream,
      state: this.state,
      fresh: now < this.freshUntilMs(),
      last_entry_id: this.lastEntryId(),
      last_read_at: this.lastReadMs ? new Date(this.lastReadMs).toISOString() : null,
      max_staleness_ms: this.o.maxStalenessMs,
      problem: this.lastProblem ?? null,
    };
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loopDone = this.loop();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.state = 'stopped';
    this.wake?.();
    dropConnection(this.reader);
    dropConnection(this.writer);
    this.reader = undefined;
    this.writer = undefined;
    await this.loopDone;
  }

  /**
   * XADD the entry, trimming the stream to entries younger than revocation.retain (MINID, `~`:
   * Redis may keep a few more, never fewer). Returns the entry id. The caller applies it locally
   * at once; the reader then skips that id.
   */
  async publish(entry: RevocationEntry): Promise<string> {
    const writer = await this.writerConnection();
    const fields = entryFields(entry);
    const mine = { key: fieldsKey(fields), taken: false };
    this.publishing.push(mine);
    try {
      const id = await writer.xAdd(this.o.stream, '*', fields, { TRIM: { strategy: 'MINID', strategyModifier: '~', threshold: Date.now() - this.o.retainMs } });
      if (!mine.taken) this.appliedHere.add(id);
      // Bounded: an id is removed when the reader sees it; a reader that is down long sees a gap anyway.
      if (this.appliedHere.size > 10_000) this.appliedHere.delete(this.appliedHere.values().next().value!);
      return id;
    } catch (error) {
      dropConnection(writer);
      if (this.writer === writer) this.writer = undefined;
      throw new Error(scrub(describeError(error), this.o), { cause: error });
    } finally {
      this.publishing.splice(this.publishing.indexOf(mine), 1);
    }
  }

  private async writerConnection(): Promise<RedisConnection> {
    if (this.writer?.isReady) return this.writer;
    dropConnection(this.writer);
    this.writer = undefined;
    this.writerConnecting ??= connectRedis(this.o, 'portcullis-revocation-writer').finally(() => (this.writerConnecting = undefined));
    const writer = await this.writerConnecting;
    if (!this.running) {
      dropConnection(writer);
      throw new Error('the revocation bus is stopped');
    }
    this.writer = writer;
    return writer;
  }

  private async loop(): Promise<void> {
    let backoffMs = 0;
    while (this.running) {
      try {
        if (!this.reader?.isReady) {
          dropConnection(this.reader);
          this.reader = undefined;
          this.state = 'connecting';
          this.reader = await connectRedis(this.o, 'portcullis-revocation-reader');
          this.caughtUp = false;
        }
        const reader = this.reader;
        // The writer is connected ahead of the first publish, so a revocation never waits for a handshake.
        if (!this.writer?.isReady) void this.writerConnection().catch(() => undefined);
        if (!this.caughtUp) {
          this.state = 'reading';
          await this.checkGap(reader);
          const read = await this.readAll(reader);
          this.caughtUp = true;
          this.succeeded();
          const fields = { stream: this.o.stream, entries: read, last_entry_id: this.lastEntryId() };
          if (!this.startedLive) this.o.logger.info(fields, 'revocation bus: stream read whole; following it');
          // After a gap the read started over (checkGap said so): never "from the last entry read".
          else if (this.fromStart) this.o.logger.info(fields, 'revocation bus: reconnected and read the stream from the start (after the gap above); following it');
          else this.o.logger.info(fields, 'revocation bus: reconnected and caught up from the last entry read');
          this.fromStart = false;
          this.startedLive = true;
        } else {
          await this.follow(reader);
          this.succeeded();
        }
        this.state = 'up';
        backoffMs = 0;
      } catch (error) {
        if (!this.running) break;
        dropConnection(this.reader);
        this.reader = undefined;
        this.caughtUp = false;
        this.state = 'down';
        const problem = scrub(describeError(error), this.o);
        if (problem !== this.lastProblem) this.o.logger.warn({ url: redactUrl(this.o.url), stream: this.o.stream, detail: problem, last_entry_id: this.lastEntryId() }, 'revocation bus: read failed; retrying with backoff from the last entry read');
        this.lastProblem = problem;
        this.o.onFresh(this.freshUntilMs());
        backoffMs = backoffMs === 0 ? 50 : Math.min(backoffMs * 2, 2_000);
        await this.sleep(backoffMs * (0.5 + Math.random() / 2));
      }
    }
  }

  private succeeded(): void {
    this.lastReadMs = Date.now();
    if (this.lastProblem !== undefined) {
      this.o.logger.info({ stream: this.o.stream, last_entry_id: this.lastEntryId() }, 'revocation bus: reading again');
      this.lastProblem = undefined;
    }
    this.o.onFresh(this.freshUntilMs());
  }

  /**
   * The stream's first entry is newer than the last id read (or the stream is gone): entries this
   * sidecar never read were lost. Say so, and read from the start: nothing held is forgotten.
   */
  private async checkGap(reader: RedisConnection): Promise<void> {
    if (this.lastId === '0-0') return;
    const first = messagesOf(await reader.xRange(this.o.stream, '-', '+', { COUNT: 1 }))[0];
    if (first !== undefined && compareStreamIds(first.id, this.lastId) <= 0) return;
    this.o.metrics.revocationBusGaps.inc();
    this.o.logger.warn(
      { stream: this.o.stream, last_entry_id: this.lastEntryId(), first_entry_id: first?.id ?? null },
      first === undefined
        ? 'revocation bus: the stream is empty although entries were read from it (Redis restarted without its data?); revocations published meanwhile may be lost; keeping every revocation held and reading from the start'
        : 'revocation bus: the stream starts after the last entry read (trimmed past revocation.retain, or Redis restarted); revocations published meanwhile may be lost; keeping every revocation held and reading from the start',
    );
    this.lastId = '0-0';
    this.fromStart = true;
  }

  /** Pages through everything after the last id read (XRANGE, exclusive start). */
  private async readAll(reader: RedisConnection): Promise<number> {
    let read = 0;
    for (;;) {
      const start = this.lastId === '0-0' ? '-' : `(${this.lastId}`;
      const page = messagesOf(await reader.xRange(this.o.stream, start, '+', { COUNT: this.pageSize }));
      for (const message of page) this.take(message, this.startedLive);
      read += page.length;
      if (page.length < this.pageSize) return read;
    }
  }

  /** One blocking read; a reply that never comes drops the connection (a silent partition). */
  private async follow(reader: RedisConnection): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const silence = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer to XREAD within ${this.blockMs + this.o.connectTimeoutMs}ms`)), this.blockMs + this.o.connectTimeoutMs);
    });
    try {
      const read = reader.xRead({ key: this.o.stream, id: this.lastId }, { BLOCK: this.blockMs, COUNT: this.pageSize });
      // If silence wins, dropping the connection rejects the read: nobody awaits it then.
      read.catch(() => undefined);
      const reply = await Promise.race([read, silence]);
      for (const message of messagesOf(reply)) this.take(message, true);
    } finally {
      clearTimeout(timer);
    }
  }

  private take(message: StreamMessage, live: boolean): void {
    this.lastId = message.id;
    this.o.metrics.revocationBusRead.inc();
    if (this.appliedHere.delete(message.id)) return;
    const parsed = parseEntry(message.message);
    const atMs = streamIdTime(message.id);
    if (!parsed.ok || atMs === undefined) {
      // Skipped, logged once (the reader never reads an id twice but after a gap), counted; the reader goes on.
      this.o.metrics.revocationBusSkipped.inc();
      this.o.logger.warn({ stream: this.o.stream, entry_id: message.id, detail: parsed.ok ? 'not a stream id' : parsed.problem }, 'revocation bus: malformed entry skipped');
      return;
    }
    if (this.publishing.length > 0) {
      // This sidecar's own publish, seen before XADD answered: the publisher applies it.
      const key = fieldsKey(message.message);
      const mine = this.publishing.find((p) => !p.taken && p.key === key);
      if (mine) {
        mine.taken = true;
        return;
      }
    }
    this.o.onEntry(parsed.entry, message.id, atMs, live);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}
