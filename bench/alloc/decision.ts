// Heap bytes per cache-hit decision, as bench/micro/run.ts's first row counts them, printed as
// JSON for the allocation budget (test/budget/allocations.test.ts), which runs this under plain
// Node: the test runner's own transform of the sources allocates differently (576 against 432
// bytes per hit when measured), and the budget is for the code as the proxy runs it.
// Usage: node bench/alloc/decision.ts
import { cacheHitFixture } from '../micro/cache-hit.ts';
import { bytesPerCall } from './allocated.ts';

const fixture = await cacheHitFixture();
const { authorizer } = fixture.generation;
const { facts } = fixture;
// Warm up until the optimising compiler has run: unoptimised code allocates more (boxed numbers).
for (let i = 0; i < 200_000; i++) authorizer.authorize(facts);
const hit = authorizer.authorize(facts);
const allowed = !(hit instanceof Promise) && hit.allow;
const bytes = bytesPerCall(() => authorizer.authorize(facts), 20_000);
fixture.close();
process.stdout.write(JSON.stringify({ allowed, 'decision, cache hit': bytes }) + '\n');
