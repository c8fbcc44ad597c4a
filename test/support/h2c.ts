// Helpers for driving the h2c pool in tests: a sink that collects one answer, and gRPC's
// length-prefixed message framing (gRPC over HTTP/2: 1 byte compressed flag, 4 bytes length).
import type { Readable } from 'node:stream';
import type { H2cCall, H2cPool } from '../../src/forward/h2c-pool.ts';
import type { UpstreamError } from '../../src/forward/upstream-pool.ts';

export interface Outcome {
  status?: number;
  headers?: string[];
  body: Buffer;
  trailers?: string[];
  error?: UpstreamError;
  responseStarted?: boolean;
}

export interface SendOptions {
  method?: string;
  headers?: string[];
  body?: Readable;
  authority?: string;
  idleTimeoutMs?: number;
  /** While it says true, onData reports backpressure (a client that stopped reading). */
  stopReading?: () => boolean;
  /** Called with each chunk as it arrives. */
  onChunk?: (chunk: Buffer) => void;
}

export interface Sent {
  call: H2cCall;
  done: Promise<Outcome>;
  /** Bytes delivered to the sink so far. */
  received(): number;
}

export function send(pool: H2cPool, path: string, options: SendOptions = {}): Sent {
  const chunks: Buffer[] = [];
  let received = 0;
  const outcome: Outcome = { body: Buffer.alloc(0) };
  let resolve!: (outcome: Outcome) => void;
  const done = new Promise<Outcome>((r) => (resolve = r));
  const call = pool.request({
    method: options.method ?? (options.body ? 'POST' : 'GET'),
    path,
    authority: options.authority,
    headers: options.headers ?? [],
    body: options.body ?? null,
    idleTimeoutMs: options.idleTimeoutMs,
    exchange: {
      onHead(status, headers) {
        outcome.status = status;
        outcome.headers = headers;
      },
      onData(chunk) {
        received += chunk.length;
        chunks.push(Buffer.from(chunk));
        options.onChunk?.(chunk);
        return !(options.stopReading?.() ?? false);
      },
      onEnd(last, trailers) {
        if (last) chunks.push(Buffer.from(last));
        outcome.trailers = trailers;
        outcome.body = Buffer.concat(chunks);
        resolve(outcome);
      },
      onError(error, responseStarted) {
        outcome.error = error;
        outcome.responseStarted = responseStarted;
        outcome.body = Buffer.concat(chunks);
        resolve(outcome);
      },
    },
  });
  return { call, done, received: () => received };
}

/** A field's value in a flat list, or undefined. */
export function field(fields: readonly string[] | undefined, name: string): string | undefined {
  if (fields === undefined) return undefined;
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

/** One gRPC message: uncompressed, length-prefixed. */
export function grpcFrame(message: Buffer | string): Buffer {
  const payload = typeof message === 'string' ? Buffer.from(message) : message;
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** The messages in a gRPC body. */
export function grpcMessages(body: Buffer): string[] {
  const out: string[] = [];
  let at = 0;
  while (at + 5 <= body.length) {
    const length = body.readUInt32BE(at + 1);
    out.push(body.subarray(at + 5, at + 5 + length).toString());
    at += 5 + length;
  }
  return out;
}

export const GRPC_HEADERS = ['content-type', 'application/grpc', 'te', 'trailers'];
