// Drives our parser over a connection's bytes the way the wiring will: head, then the body its
// framing says (Content-Length bytes or the chunked decoder), then the next request, until an
// upgrade, a refusal, or a request after which the connection closes.
import { ChunkedDecoder, MORE } from '../../../src/http1/chunked-decoder.ts';
import { isFailure } from '../../../src/http1/failure.ts';
import { RequestHeadParser, type HeadLimits } from '../../../src/http1/head-parser.ts';
import type { Outcome } from './outcome.ts';

export function readOurs(chunks: readonly Buffer[], limits: HeadLimits): Outcome {
  const outcome: Outcome = { heads: [], bodies: [], refused: false };
  const heads = new RequestHeadParser(limits);
  let body: Buffer[] = [];
  const decoder = new ChunkedDecoder(limits, (slice) => body.push(Buffer.from(slice)));
  let state = 'head' as 'head' | 'length' | 'chunked' | 'closed';
  let remaining = 0;
  const complete = (keepAlive: boolean): void => {
    outcome.bodies.push(Buffer.concat(body).toString('latin1'));
    body = [];
    state = keepAlive ? 'head' : 'closed';
  };
  let keepAlive = true;
  for (const chunk of chunks) {
    let pos = 0;
    while (pos < chunk.length) {
      if (state === 'closed') {
        // llhttp: bytes after a request that closes the connection are HPE_CLOSED_CONNECTION (empty lines aside).
        if (chunk[pos] === 0x0d || chunk[pos] === 0x0a) {
          pos++;
          continue;
        }
        outcome.refused = true;
        return outcome;
      }
      if (state === 'head') {
        const head = heads.push(chunk, pos);
        if (head === undefined) break;
        if (isFailure(head)) {
          outcome.refused = true;
          return outcome;
        }
        pos = head.consumed;
        keepAlive = head.keepAlive;
        outcome.heads.push({
          method: head.method,
          target: head.target,
          version: head.version === 11 ? '1.1' : '1.0',
          fields: head.fields,
          framing: head.framing === 'length' ? 'length ' + head.contentLength : head.framing,
          keepAlive: head.keepAlive,
          upgrade: head.upgrade,
          expect: head.expect,
        });
        if (head.upgrade) return outcome;
        if (head.framing === 'chunked') {
          decoder.reset();
          state = 'chunked';
        } else if (head.framing === 'length' && head.contentLength > 0) {
          remaining = head.contentLength;
          state = 'length';
        } else {
          complete(keepAlive);
        }
      } else if (state === 'length') {
        const take = Math.min(remaining, chunk.length - pos);
        body.push(chunk.subarray(pos, pos + take));
        pos += take;
        remaining -= take;
        if (remaining === 0) complete(keepAlive);
      } else {
        const end = decoder.push(chunk, pos);
        if (end === MORE) break;
        if (isFailure(end)) {
          outcome.refused = true;
          return outcome;
        }
        pos = end;
        complete(keepAlive);
      }
    }
  }
  // The connection ends: a request half read is refused (llhttp_finish: HPE_INVALID_EOF_STATE).
  if (state === 'length' || state === 'chunked' || heads.buffered > 0) outcome.refused = true;
  return outcome;
}
