// A raw HTTP/2 peer over a real mTLS socket (ALPN h2), for frames no HTTP/2 library will send:
// floods, resets in a loop, malformed header blocks. RFC 9113 §4 framing, and header blocks as
// RFC 7541 literal fields without indexing, no Huffman (§6.2.2): every name and value sent as is.
import { connect, type TLSSocket } from 'node:tls';
import type { Issued } from './harness.ts';

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** RFC 9113 §6 frame types. */
export const FRAME = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PUSH_PROMISE: 5, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;
/** RFC 9113 §7 error codes. */
export const ERROR = { NO_ERROR: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2, FLOW_CONTROL_ERROR: 3, SETTINGS_TIMEOUT: 4, STREAM_CLOSED: 5, FRAME_SIZE_ERROR: 6, REFUSED_STREAM: 7, CANCEL: 8, COMPRESSION_ERROR: 9, CONNECT_ERROR: 10, ENHANCE_YOUR_CALM: 11, INADEQUATE_SECURITY: 12, HTTP_1_1_REQUIRED: 13 } as const;
/** RFC 9113 §6.5.2 setting identifiers. */
export const SETTING = { HEADER_TABLE_SIZE: 1, ENABLE_PUSH: 2, MAX_CONCURRENT_STREAMS: 3, INITIAL_WINDOW_SIZE: 4, MAX_FRAME_SIZE: 5, MAX_HEADER_LIST_SIZE: 6 } as const;

/** One frame: 9-byte header (24-bit length, type, flags, 31-bit stream id) and its payload. */
export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.allocUnsafe(9 + payload.length);
  out.writeUIntBE(payload.length, 0, 3);
  out[3] = type;
  out[4] = flags;
  out.writeUInt32BE(streamId & 0x7fffffff, 5);
  payload.copy(out, 9);
  return out;
}

/** RFC 7541 §5.1 integer with an N-bit prefix; `high` holds the pattern bits above the prefix. */
function hpackInt(value: number, prefixBits: number, high: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [high | value];
  const bytes = [high | max];
  let rest = value - max;
  while (rest >= 128) {
    bytes.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return bytes;
}

function hpackString(text: string): Buffer {
  const raw = Buffer.from(text, 'latin1');
  return Buffer.concat([Buffer.from(hpackInt(raw.length, 7, 0x00)), raw]); // H bit 0: no Huffman
}

/** A header block of literal fields without indexing, new names (RFC 7541 §6.2.2, pattern 0000 0000). Order and case as given. */
export function hpack(fields: ReadonlyArray<readonly [string, string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of fields) parts.push(Buffer.from([0x00]), hpackString(name), hpackString(value));
  return Buffer.concat(parts);
}

/** The request fields of an ordinary GET, pseudo-headers first. */
export function getFields(path = '/orders/1', extra: ReadonlyArray<readonly [string, string]> = []): Array<readonly [string, string]> {
  return [[':method', 'GET'], [':scheme', 'https'], [':authority', 'localhost'], [':path', path], ...extra];
}

export const frames = {
  settings: (values: ReadonlyArray<readonly [number, number]> = []): Buffer => {
    const payload = Buffer.alloc(values.length * 6);
    values.forEach(([id, value], i) => {
      payload.writeUInt16BE(id, i * 6);
      payload.writeUInt32BE(value, i * 6 + 2);
    });
    return frame(FRAME.SETTINGS, 0, 0, payload);
  },
  settingsAck: (): Buffer => frame(FRAME.SETTINGS, FLAG.ACK, 0),
  headers: (streamId: number, block: Buffer, { endStream = true, endHeaders = true } = {}): Buffer =>
    frame(FRAME.HEADERS, (endStream ? FLAG.END_STREAM : 0) | (endHeaders ? FLAG.END_HEADERS : 0), streamId, block),
  continuation: (streamId: number, block: Buffer, endHeaders = false): Buffer => frame(FRAME.CONTINUATION, endHeaders ? FLAG.END_HEADERS : 0, streamId, block),
  data: (streamId: number, payload: Buffer = Buffer.alloc(0), endStream = false): Buffer => frame(FRAME.DATA, endStream ? FLAG.END_STREAM : 0, streamId, payload),
  rstStream: (streamId: number, code: number = ERROR.CANCEL): Buffer => {
    const payload = Buffer.alloc(4);
    payload.writeUInt32BE(code);
    return frame(FRAME.RST_STREAM, 0, streamId, payload);
  },
  ping: (opaque = 0, ack = false): Buffer => {
    const payload = Buffer.alloc(8);
    payload.writeBigUInt64BE(BigInt(opaque));
    return frame(FRAME.PING, ack ? FLAG.ACK : 0, 0, payload);
  },
  windowUpdate: (streamId: number, increment: number): Buffer => {
    const payload = Buffer.alloc(4);
    payload.writeUInt32BE(increment & 0x7fffffff);
    return frame(FRAME.WINDOW_UPDATE, 0, streamId, payload);
  },
  goaway: (lastStreamId: number, code: number = ERROR.NO_ERROR): Buffer => {
    const payload = Buffer.alloc(8);
    payload.writeUInt32BE(lastStreamId & 0x7fffffff, 0);
    payload.writeUInt32BE(code, 4);
    return frame(FRAME.GOAWAY, 0, 0, payload);
  },
};

/** A frame as received: its header, and for RST_STREAM and GOAWAY the error code. */
export interface Received {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly length: number;
  /** RST_STREAM's or GOAWAY's error code. */
  readonly errorCode?: number;
  /** HEADERS: the raw (HPACK-encoded) block; DATA: the payload. Kept only when small. */
  readonly payload?: Buffer;
}

export interface RawH2 {
  readonly socket: TLSSocket;
  /** Every frame received so far, in order. */
  readonly received: Received[];
  /** Bytes written and not yet flushed are dropped when the peer is gone; false once closed. */
  send(...chunks: Buffer[]): boolean;
  /** Resolves with the time the connection closed. */
  readonly closed: Promise<number>;
  closedWithin(ms: number): Promise<boolean>;
  /** The first GOAWAY received, if any. */
  goaway(): Received | undefined;
  /** Waits for a frame matching `test`, at most `ms`. */
  waitFor(test: (f: Received) => boolean, ms?: number): Promise<Received | undefined>;
  /** Resolves once the server has acknowledged our SETTINGS (its own came first, and were acknowledged): the connection is established. */
  ready(): Promise<void>;
  /** Bytes sent so far. */
  readonly sent: { bytes: number; frames: number };
  destroy(): void;
}

/**
 * Opens an mTLS connection with ALPN h2. With `preface` (default), writes the client
 * connection preface and an empty SETTINGS frame (RFC 9113 §3.4) and ACKs the server's SETTINGS.
 */
export async function rawH2(port: number, ca: string, client: Issued, { preface = true, initialSettings = [] as ReadonlyArray<readonly [number, number]>, ackSettings = true } = {}): Promise<RawH2> {
  const socket = connect({ port, host: '127.0.0.1', servername: 'localhost', ca, cert: client.certPem, key: client.keyPem, ALPNProtocols: ['h2'] });
  socket.on('error', () => undefined);
  const received: Received[] = [];
  const waiters = new Set<{ test: (f: Received) => boolean; resolve: (f: Received | undefined) => void }>();
  let buffer: Buffer = Buffer.alloc(0);
  let open = true;
  const sent = { bytes: 0, frames: 0 };
  const send = (...chunks: Buffer[]): boolean => {
    if (!open || socket.destroyed) return false;
    for (const chunk of chunks) {
      sent.bytes += chunk.length;
      sent.frames++;
      socket.write(chunk);
    }
    return true;
  };
  socket.on('data', (chunk: Buffer) => {
    buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
    while (buffer.length >= 9) {
      const length = buffer.readUIntBE(0, 3);
      if (buffer.length < 9 + length) break;
      const type = buffer[3]!;
      const flags = buffer[4]!;
      const streamId = buffer.readUInt32BE(5) & 0x7fffffff;
      const payload = buffer.subarray(9, 9 + length);
      const errorCode = type === FRAME.RST_STREAM ? payload.readUInt32BE(0) : type === FRAME.GOAWAY ? payload.readUInt32BE(4) : undefined;
      const f: Received = { type, flags, streamId, length, ...(errorCode !== undefined ? { errorCode } : {}), ...(length <= 4096 && (type === FRAME.HEADERS || type === FRAME.DATA) ? { payload: Buffer.from(payload) } : {}) };
      buffer = buffer.subarray(9 + length);
      received.push(f);
      if (ackSettings && type === FRAME.SETTINGS && (flags & FLAG.ACK) === 0) send(frames.settingsAck());
      for (const w of waiters) {
        if (w.test(f)) {
          waiters.delete(w);
          w.resolve(f);
        }
      }
    }
  });
  const closed = new Promise<number>((resolve) =>
    socket.once('close', () => {
      open = false;
      for (const w of waiters) w.resolve(undefined);
      waiters.clear();
      resolve(Date.now());
    }),
  );
  const waitFor = (test: (f: Received) => boolean, ms = 2000): Promise<Received | undefined> => {
    const seen = received.find(test);
    if (seen) return Promise.resolve(seen);
    if (!open) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const w = { test, resolve };
      waiters.add(w);
      setTimeout(() => {
        if (waiters.delete(w)) resolve(undefined);
      }, ms);
    });
  };
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('error', reject);
  });
  if (socket.alpnProtocol !== 'h2') throw new Error(`ALPN chose ${String(socket.alpnProtocol)}, not h2`);
  if (preface) send(PREFACE, frames.settings(initialSettings));
  return {
    socket,
    received,
    send,
    closed,
    sent,
    closedWithin: (ms) => Promise.race([closed.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms))]),
    goaway: () => received.find((f) => f.type === FRAME.GOAWAY),
    waitFor,
    destroy: () => socket.destroy(),
    ready: async () => {
      if (!(await waitFor((f) => f.type === FRAME.SETTINGS && (f.flags & FLAG.ACK) !== 0, 5000))) throw new Error('no SETTINGS ACK from the server');
    },
  };
}

/** The `:status` of a response HEADERS block, when the server sent it as a static-table index or a literal (RFC 7541 Appendix A: 8 = 200, 13 = 404, ...). */
export function statusOf(f: Received): number | undefined {
  const block = f.payload;
  if (!block || block.length === 0) return undefined;
  const STATIC: Record<number, number> = { 8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500 };
  const first = block[0]!;
  if ((first & 0x80) !== 0) return STATIC[first & 0x7f];
  // Literal with the name ":status" indexed (index 8-14): the value follows, possibly Huffman-coded.
  const index = (first & 0x40) !== 0 ? first & 0x3f : first & 0x0f;
  if (index < 8 || index > 14) return undefined;
  const length = block[1]! & 0x7f;
  if ((block[1]! & 0x80) !== 0) return undefined; // Huffman: not decoded here
  return Number(block.subarray(2, 2 + length).toString('latin1'));
}
