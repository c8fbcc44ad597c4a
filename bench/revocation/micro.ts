// The revocation check alone (decision step 7, Revocations.isRevoked + the freshness compare
// the request path makes), with an empty store and with 100,000 entries held (50,000 jti +
// 50,000 sub, none naming the grant checked), in one tinybench run: what the check adds to a
// cache hit, whose whole budget is 1 µs (bench/micro/run.ts measures the full cache hit both ways).
// Run: node bench/revocation/micro.ts [--quick]
import { randomUUID } from 'node:crypto';
import { Bench } from 'tinybench';
import { Revocations } from '../../src/decision/revocations.ts';

const quick = process.argv.includes('--quick');
const empty = new Revocations();
const held = new Revocations();
for (let i = 0; i < 50_000; i++) {
  held.revokeJti(randomUUID());
  held.revokeSub(`spiffe://example.org/ns/prod/sa/revoked-${i}`);
}
held.freshUntilMs = empty.freshUntilMs = Date.now() + 3_600_000;
const jti = randomUUID();
const sub = 'spiffe://example.org/ns/prod/sa/support-bot';
const iat = Date.now() - 1_000;
const exp = Date.now() + 600_000;
let sink = 0;
const check = (store: Revocations) => {
  if (Date.now() > store.freshUntilMs || store.full || store.isRevoked(jti, sub, iat, exp)) sink++;
};

const bench = new Bench({ time: quick ? 50 : 1000, warmupTime: quick ? 10 : 200 });
bench.add('revocation check, empty store', () => check(empty)).add(`revocation check, ${held.size.toLocaleString('en')} entries held`, () => check(held));
await bench.run();
const lines = ['| benchmark | median ns/op | ops/s |', '|---|---:|---:|'];
for (const task of bench.tasks) {
  const r = task.result as { latency?: { p50?: number }; throughput?: { mean?: number } } | undefined;
  lines.push(`| ${task.name} | ${((r?.latency?.p50 ?? NaN) * 1e6).toFixed(0)} | ${(r?.throughput?.mean ?? 0).toFixed(0)} |`);
}
process.stdout.write(lines.join('\n') + `\n${sink === 0 ? '' : 'unexpected: the grant checked was refused\n'}`);
empty.stop();
held.stop();
process.exit(0);
