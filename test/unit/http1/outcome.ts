// What a request reader made of a connection's bytes, in one shape for llhttp and for ours, so
// the differential tests compare them with one toEqual.
import { ConnectionReader, type ReaderSink } from '../../../src/http1/connection-reader.ts';
import type { HeadLimits } from '../../../src/http1/head-parser.ts';
import type { RequestHead } from '../../../src/http1/request-head.ts';

export interface ParsedRequest {
  method: string;
  target: string;
  version: string;
  fields: string[];
  framing: string;
  keepAlive: boolean;
  upgrade: boolean;
  expect: string;
}

export interface Outcome {
  /** Every head accepted, in order. */
  heads: ParsedRequest[];
  /** The decoded body of every request read to its end (latin1). */
  bodies: string[];
  /** The connection was refused (a parse error, a check failed, or it ended mid-request). */
  refused: boolean;
}

/** What src/http1/connection-reader.ts makes of a connection's bytes, pushed chunk by chunk, in the Outcome shape. */
export function readOurs(chunks: readonly Buffer[], limits: HeadLimits): Outcome {
  const outcome: Outcome = { heads: [], bodies: [], refused: false };
  const reader = new ConnectionReader(limits, outcomeSink(outcome));
  for (const chunk of chunks) if (reader.push(chunk) === 'stopped') break;
  // The connection ends: a request half read is refused (llhttp_finish: HPE_INVALID_EOF_STATE).
  if (!outcome.refused && reader.finish() !== undefined) outcome.refused = true;
  return outcome;
}

/** A reader's sink that records into `outcome`; `afterHead` runs after each head is recorded. */
export function outcomeSink(outcome: Outcome, afterHead?: () => void): ReaderSink {
  let body: Buffer[] = [];
  return {
    onHead: (head) => {
      outcome.heads.push(parsedRequest(head));
      afterHead?.();
    },
    // A copy: the view is only valid until the chunk is reused.
    onBody: (data) => void body.push(Buffer.from(data)),
    onEnd: () => {
      outcome.bodies.push(Buffer.concat(body).toString('latin1'));
      body = [];
    },
    onStop: () => {
      outcome.refused = true;
    },
  };
}

/** A head as ParsedRequest (llhttp's reading, as llhttp-oracle.ts builds it). */
export function parsedRequest(head: RequestHead): ParsedRequest {
  return {
    method: head.method,
    target: head.target,
    version: head.version === 11 ? '1.1' : '1.0',
    fields: head.fields,
    framing: head.framing === 'length' ? 'length ' + head.contentLength : head.framing,
    keepAlive: head.keepAlive,
    upgrade: head.upgrade,
    expect: head.expect,
  };
}
