// Heap bytes per call of the hot path's budgeted pieces, printed as JSON for the allocation budget
// (test/budget/allocations.test.ts), which runs this under plain Node: the test runner's own
// transform of the sources allocates differently (576 against 432 bytes per cache hit when
// measured), and the budget is for the code as the proxy runs it.
// - "decision, cache hit": bench/micro/run.ts's first row (same fixture, same counter).
// - "open exchanges, add + remove": one exchange admitted on a grant and ended, with 32 others
//   open on the same grant (the load bench's 32 connections), as the proxy does per privileged
//   request (src/exchange/open-exchanges.ts).
// Usage: node bench/alloc/hot-path.ts
import { cacheHitFixture } from '../micro/cache-hit.ts';
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
process.stdout.write(JSON.stringify({ allowed, 'decision, cache hit': decision, 'open exchanges, add + remove': openExchanges, openSize: open.size }) + '\n');
