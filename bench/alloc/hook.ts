// Loaded with `--import` into every Node process of a load bench run (bench/alloc/run.ts sets
// NODE_OPTIONS), it does something only in `portcullis run`: every 200 ms it appends one JSON line
// to $PORTCULLIS_ALLOC_DIR/<pid>.jsonl with the HTTP/1.1 requests received so far, the heap bytes
// allocated so far (bench/alloc/allocated.ts: young generation and all spaces, GCs accounted
// for, no GC forced) and the RSS. With $PORTCULLIS_ALLOC_SAMPLE set, it also samples where the
// bytes are allocated, for 2 s under load from the 5,000th request (V8's sampling heap profiler,
// every allocation kept, collected or not), into <pid>.heapprofile. Bench-only: nothing in src/
// knows of it.
import { appendFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { basename, dirname, extname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { AllocationCounter } from './allocated.ts';

const dir = process.env.PORTCULLIS_ALLOC_DIR;
const main = process.argv[1] ?? '';
const config = process.argv[process.argv.indexOf('--config') + 1] ?? '';

if (dir && /cli[/\\]main\.(ts|js)$/.test(main) && process.argv.includes('run')) {
  const file = join(dir, `${process.pid}.jsonl`);
  // Requests counted where our HTTP/1.1 reader hands them out (Http1Connection's onHead, in the
  // very module the proxy runs: dist/ or src/, next to its cli/main), with no allocation of our
  // own per request (apply with `arguments` is not materialised).
  let requests = 0;
  const connectionModule = pathToFileURL(join(dirname(main), '..', 'http1', `http1-connection${extname(main)}`)).href;
  const { Http1Connection } = (await import(connectionModule)) as { Http1Connection: { prototype: { onHead: (...args: unknown[]) => void } } };
  const onHead = Http1Connection.prototype.onHead;
  Http1Connection.prototype.onHead = function (this: unknown): void {
    requests++;
    // eslint-disable-next-line prefer-rest-params
    onHead.apply(this, arguments as unknown as unknown[]);
  };
  const sample = process.env.PORTCULLIS_ALLOC_SAMPLE !== undefined;
  let sampling = false;
  const sampleAllocations = async (out: string): Promise<void> => {
    sampling = true;
    const session = new Session();
    session.connect();
    await session.post('HeapProfiler.enable');
    await session.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const { profile } = await session.post('HeapProfiler.stopSampling');
    writeFileSync(out, JSON.stringify(profile));
    session.disconnect();
  };
  const counter = new AllocationCounter();
  let young = 0;
  let total = 0;
  let gcs = 0;
  let scavenges = 0;
  appendFileSync(file, JSON.stringify({ case: basename(config).replace(/\.ya?ml$/, ''), pid: process.pid }) + '\n');
  counter.start();
  const timer = setInterval(() => {
    const window = counter.stop();
    young += window.young;
    total += window.total;
    gcs += window.gcs;
    scavenges += window.scavenges;
    if (sample && requests >= 5000 && !sampling) void sampleAllocations(join(dir, `${process.pid}.heapprofile`));
    const memory = process.memoryUsage();
    // Written between stop() and start(): the line's own allocations are not counted.
    appendFileSync(file, JSON.stringify({ t: performance.now(), requests, young, total, gcs, scavenges, rss: memory.rss, heapUsed: memory.heapUsed, heapTotal: memory.heapTotal }) + '\n');
    counter.start();
  }, 200);
  timer.unref();
}
