// Issue 15 item 3's micro figure: our HTTP/1.1 request-head parser (src/http1/) against llhttp
// through the HTTPParser binding Node's server uses, in the same process, on the load bench's
// cached request (POST /orders/42/refund with a grant and a posture token of ~600 characters
// each, bench/run.ts). ns/op (median of 11 rounds, alternating between the rows) and young-generation heap bytes per op
// (bench/alloc/allocated.ts, least of 5 windows). llhttp's row is the parser alone: what Node's
// server then builds from it (IncomingMessage, the headers object, ServerResponse) is not in it.
//   node bench/micro/http1-parser.ts [--quick]
import { createRequire } from 'node:module';
import { bytesPerCall } from '../alloc/allocated.ts';
import { isFailure } from '../../src/http1/failure.ts';
import { RequestHeadParser } from '../../src/http1/head-parser.ts';

const quick = process.argv.includes('--quick');
// A compact JWS of 603 characters, as the bench's ES256 grant and posture tokens are about.
const token = (seed: string) => 'eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.' + Buffer.from(seed.repeat(80)).toString('base64url').slice(0, 480) + '.' + 'x'.repeat(86);
const head =
  'POST /orders/42/refund HTTP/1.1\r\n' +
  'host: 127.0.0.1:8443\r\n' +
  'connection: keep-alive\r\n' +
  'content-type: application/json\r\n' +
  'accept: */*\r\n' +
  'user-agent: undici\r\n' +
  `x-jit-grant: ${token('grant')}\r\n` +
  `x-device-posture: ${token('posture')}\r\n` +
  'content-length: 2\r\n\r\n';
const request = Buffer.from(head + '{}', 'latin1');
const split = [request.subarray(0, 700), request.subarray(700)];

const limits = { maxHeaderBytes: 16_384, maxFields: 128 };
const ours = new RequestHeadParser(limits);
let sink = 0;
function oursWhole(): void {
  const h = ours.push(request, 0);
  if (h === undefined || isFailure(h)) throw new Error('refused');
  sink += request.subarray(h.consumed, h.consumed + h.contentLength).length + h.fields.length;
}
function oursSplit(): void {
  if (ours.push(split[0]!, 0) !== undefined) throw new Error('whole too early');
  const h = ours.push(split[1]!, 0);
  if (h === undefined || isFailure(h)) throw new Error('refused');
  sink += h.fields.length;
}

interface HttpParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(data: Buffer): number | Error;
  [key: number]: unknown;
}
const { HTTPParser } = createRequire(import.meta.url)('_http_common') as {
  HTTPParser: { new (): HttpParser; REQUEST: number; kOnHeaders: number; kOnHeadersComplete: number; kOnBody: number; kOnMessageComplete: number; kOnExecute: number; kLenientNone: number };
};
const llhttp = new HTTPParser();
llhttp.initialize(HTTPParser.REQUEST, {}, limits.maxHeaderBytes, HTTPParser.kLenientNone);
// The callbacks Node's server sets (lib/_http_common.js), reduced to keeping what they are given.
llhttp[HTTPParser.kOnHeaders] = () => {};
llhttp[HTTPParser.kOnHeadersComplete] = (_ma: number, _mi: number, fields: string[]) => {
  sink += fields.length;
  return 0;
};
llhttp[HTTPParser.kOnBody] = (b: Buffer) => void (sink += b.length);
llhttp[HTTPParser.kOnMessageComplete] = () => {};
llhttp[HTTPParser.kOnExecute] = () => {};
function llhttpWhole(): void {
  if (llhttp.execute(request) instanceof Error) throw new Error('refused');
}
function llhttpSplit(): void {
  llhttp.execute(split[0]!);
  if (llhttp.execute(split[1]!) instanceof Error) throw new Error('refused');
}

/** ns/op per row: rounds alternate between the rows (the machine's load moves under all alike); the median round. */
function nsPerOp(fns: readonly (() => void)[], n: number, rounds = 11): number[] {
  for (const fn of fns) for (let i = 0; i < n; i++) fn();
  const times = fns.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) {
    fns.forEach((fn, k) => {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) fn();
      times[k]!.push(Number(process.hrtime.bigint() - t0) / n);
    });
  }
  return times.map((t) => t.sort((a, b) => a - b)[rounds >> 1]!);
}

const n = quick ? 2_000 : 50_000;
const rows: [string, () => void][] = [
  ['ours, head whole in one read', oursWhole],
  ['llhttp (HTTPParser), head whole in one read', llhttpWhole],
  ['ours, head split in two reads', oursSplit],
  ['llhttp (HTTPParser), head split in two reads', llhttpSplit],
];
console.log(`request: ${request.length} bytes (head ${head.length}), ${n} ops per round, node ${process.version}\n`);
const ns = nsPerOp(rows.map((r) => r[1]), n);
console.log('| parser | ns/op | heap bytes/op |\n|---|---:|---:|');
rows.forEach(([name, fn], k) => console.log(`| ${name} | ${ns[k]!.toFixed(0)} | ${bytesPerCall(fn, quick ? 1000 : 20_000).toFixed(0)} |`));
if (sink === 0) console.log('(nothing parsed)');
