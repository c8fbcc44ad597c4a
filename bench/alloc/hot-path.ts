// Heap bytes per call of the hot path's budgeted pieces, printed as JSON for the allocation budget
// (test/budget/allocations.test.ts), which runs this under plain Node: the test runner's own
// transform of the sources allocates differently (576 against 432 bytes per cache hit when
// measured), and the budget is for the code as the proxy runs it.
// - "decision, cache hit": bench/micro/run.ts's first row (same fixture, same counter).
// - "open exchanges, add + remove": one exchange admitted on a grant and ended, with 32 others
//   open on the same grant (the load bench's 32 connections), as the proxy does per privileged
//   request (src/exchange/open-exchanges.ts).
// - "HTTP/1.1 request read and answered": the load bench's cached request's head (two
//   603-character tokens; as a GET, so that it is answered in the same call: a body's 'end' comes
//   on a later tick) pushed into an Http1Connection as one socket read, its headers object made,
//   and an answer with the echo service's fields written and ended: our reader, writer and
//   connection per request (src/http1/), on a socket stand-in that takes every write (the TLS
//   socket's own costs are Node's).
// Usage: node bench/alloc/hot-path.ts
import { EventEmitter } from 'node:events';
import type { TLSSocket } from 'node:tls';
import { cacheHitFixture } from '../micro/cache-hit.ts';
import { Http1Connection, type Http1Handler } from '../../src/http1/http1-connection.ts';
import { headersObject } from '../../src/http1/node-headers.ts';
import { OpenExchanges, type Bound } from '../../src/exchange/open-exchanges.ts';
import { bytesPerCall } from './allocated.ts';

const fixture = await cacheHitFixture();
const { authorizer } = fixture.generation;
const { facts } = fixture;
// Warm up until the optimising compiler has run: unoptimised code allocates more (boxed numbers).
for (let i = 0; i < 200_000; i++) authorizer.authorize(facts);
const hit = authorizer.authorize(facts);
const allowed = !(hit instanceof Promise) && hit.allow;
const decision = bytesPerCall(() => authorizer.authorize(facts), 20_000);
fixture.close();

const open = new OpenExchanges(() => undefined);
const exp = Date.now() + 600_000;
const make = (): Bound => ({ deadlineMs: exp, deadlineReason: 'grant_expired', jti: 'j', peerId: 'spiffe://example.org/ns/prod/sa/support-bot', onPosture: false, cut: () => undefined, openList: undefined, openSlot: -1 });
// 32 open, and 32 more taking turns: each call ends the oldest and admits a new one.
const ring = Array.from({ length: 32 }, make);
const spare = Array.from({ length: 32 }, make);
for (const bound of ring) open.add(bound);
let turn = 0;
const churn = (): void => {
  const at = turn++ % 32;
  const next = spare[at]!;
  spare[at] = ring[at]!;
  open.remove(ring[at]!);
  ring[at] = next;
  open.add(next);
};
for (let i = 0; i < 200_000; i++) churn();
const openExchanges = bytesPerCall(churn, 50_000);
/** What Http1Connection and ResponseWriter use of a TLS socket; every write taken at once. */
class SocketStandIn extends EventEmitter {
  destroyed = false;
  writable = true;
  writableFinished = false;
  written = 0;
  /** Writes of the answer's body itself (a Buffer of its length): one per answer. */
  bodies = 0;
  write(data: string | Buffer): boolean {
    this.written += data.length;
    if (typeof data !== 'string' && data.length === answerBody.length) this.bodies++;
    return true;
  }
  cork(): void {}
  uncork(): void {}
  pause(): void {}
  resume(): void {}
  end(): void {}
  destroy(): void {
    this.destroyed = true;
  }
}
const token = (seed: string) => 'eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.' + Buffer.from(seed.repeat(80)).toString('base64url').slice(0, 480) + '.' + 'x'.repeat(86);
const cachedRequest = Buffer.from(
  'GET /orders/42/refund HTTP/1.1\r\nhost: 127.0.0.1:8443\r\nconnection: keep-alive\r\ncontent-type: application/json\r\naccept: */*\r\n' +
    `user-agent: undici\r\nx-jit-grant: ${token('grant')}\r\nx-device-posture: ${token('posture')}\r\n\r\n`,
  'latin1',
);
const answerFields = ['content-type', 'application/json', 'content-length', '61'];
const answerBody = Buffer.from('{"method":"GET","url":"/orders/42/refund","bytes":0,"ok":true}'.padEnd(61));
let answered = 0;
const handler: Http1Handler<undefined> = {
  draining: false,
  request(_connection, head, body, writer) {
    const headers = headersObject(head.fields);
    if (headers['x-jit-grant'] === undefined) throw new Error('no grant header');
    const answer = (): void => {
      writer.writeHead(200, answerFields);
      writer.end(answerBody);
      answered++;
    };
    if (body !== null) throw new Error('no body expected');
    answer();
  },
  upgrade() {
    throw new Error('no upgrade expected');
  },
  closed() {},
  refused(_connection, refusal, detail) {
    throw new Error(`refused: ${refusal} (${detail})`);
  },
};
const socket = new SocketStandIn();
new Http1Connection(socket as unknown as TLSSocket, undefined, { maxHeaderBytes: 16_384, maxFields: 2000, headersTimeoutMs: 10_000, idleTimeoutMs: 60_000 }, handler);
const readAndAnswer = (): void => void socket.emit('data', cachedRequest);
for (let i = 0; i < 200_000; i++) readAndAnswer();
const http1Request = bytesPerCall(readAndAnswer, 20_000);
process.stdout.write(
  JSON.stringify({ allowed, 'decision, cache hit': decision, 'open exchanges, add + remove': openExchanges, openSize: open.size, 'HTTP/1.1 request read and answered': http1Request, http1Answered: answered, http1Bodies: socket.bodies, http1Destroyed: socket.destroyed }) + '\n',
);
