// Heap bytes allocated over a window of code, counted without forcing a GC and whatever GCs run
// inside the window: V8's GC profiler reports the heap's used size before and after each GC, and
// between two GCs the used size grows only by what was allocated. So
//   allocated = Σ over GCs (used before it − used after the previous one, or at the start)
//             + (used at the end − used after the last GC).
// Used by the microbenchmarks (bench/micro/run.ts), the allocation budget
// (test/budget/allocations.test.ts) and, in the proxy process, the load bench's hook
// (bench/alloc/hook.ts).
import v8 from 'node:v8';

export interface Allocated {
  /** Bytes allocated in the young generation (new space and its large-object space): what per-request garbage is. */
  readonly young: number;
  /** Bytes allocated in every space (old, code and large-object spaces too: pretenured objects, compiled code). */
  readonly total: number;
  /** GCs that ran inside the window. */
  readonly gcs: number;
  readonly scavenges: number;
}

interface SpaceStats {
  readonly spaceName: string;
  readonly spaceUsedSize: number;
}
interface GcStats {
  readonly gcType: string;
  readonly beforeGC: { readonly heapStatistics: { readonly usedHeapSize: number }; readonly heapSpaceStatistics: readonly SpaceStats[] };
  readonly afterGC: { readonly heapStatistics: { readonly usedHeapSize: number }; readonly heapSpaceStatistics: readonly SpaceStats[] };
}

const YOUNG = new Set(['new_space', 'new_large_object_space']);

function youngOf(spaces: readonly { space_name?: string; spaceName?: string; space_used_size?: number; spaceUsedSize?: number }[]): number {
  let n = 0;
  for (const s of spaces) if (YOUNG.has(s.space_name ?? s.spaceName ?? '')) n += s.space_used_size ?? s.spaceUsedSize ?? 0;
  return n;
}

/** Counts the heap bytes allocated between start() and stop(). */
export class AllocationCounter {
  private profiler: v8.GCProfiler | undefined;
  private startYoung = 0;
  private startTotal = 0;

  start(): void {
    this.profiler = new v8.GCProfiler();
    this.profiler.start();
    this.startYoung = youngOf(v8.getHeapSpaceStatistics());
    this.startTotal = v8.getHeapStatistics().used_heap_size;
  }

  stop(): Allocated {
    // Read before stop(): stop() builds its report on the heap.
    const endYoung = youngOf(v8.getHeapSpaceStatistics());
    const endTotal = v8.getHeapStatistics().used_heap_size;
    const report = this.profiler!.stop() as unknown as { statistics: readonly GcStats[] } | undefined;
    this.profiler = undefined;
    let young = 0;
    let total = 0;
    let lastYoung = this.startYoung;
    let lastTotal = this.startTotal;
    let scavenges = 0;
    const gcs = report?.statistics ?? [];
    for (const gc of gcs) {
      young += Math.max(0, youngOf(gc.beforeGC.heapSpaceStatistics) - lastYoung);
      total += Math.max(0, gc.beforeGC.heapStatistics.usedHeapSize - lastTotal);
      lastYoung = youngOf(gc.afterGC.heapSpaceStatistics);
      lastTotal = gc.afterGC.heapStatistics.usedHeapSize;
      if (gc.gcType === 'Scavenge' || gc.gcType === 'MinorMarkSweep') scavenges++;
    }
    young += Math.max(0, endYoung - lastYoung);
    total += Math.max(0, endTotal - lastTotal);
    return { young, total, gcs: gcs.length, scavenges };
  }
}

/**
 * Young-generation bytes per call of `fn`: the least over `windows` windows of `n` calls each
 * (the least, because a window that overlaps the optimising compiler's work or a deopt can only
 * allocate more, never less, than the steady state).
 */
export function bytesPerCall(fn: () => unknown, n: number, windows = 5): number {
  const counter = new AllocationCounter();
  let least = Infinity;
  for (let w = 0; w < windows; w++) {
    counter.start();
    for (let i = 0; i < n; i++) fn();
    least = Math.min(least, counter.stop().young / n);
  }
  return least;
}
