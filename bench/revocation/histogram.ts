// Reading a Prometheus histogram from a /metrics scrape, and its percentiles: a sidecar reports
// lag in buckets, so a percentile is "at most this bucket's bound", never finer than the buckets.

export interface Buckets {
  /** Upper bound (seconds; Infinity for +Inf) → cumulative count. */
  readonly counts: ReadonlyMap<number, number>;
  readonly count: number;
  readonly sum: number;
}

export function histogram(text: string, name: string): Buckets {
  const counts = new Map<number, number>();
  let count = 0;
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}_bucket{`)) {
      const le = /le="([^"]+)"/.exec(line)?.[1];
      if (le === undefined) continue;
      const bound = le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le);
      counts.set(bound, (counts.get(bound) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
    } else if (line.startsWith(`${name}_count`)) count += Number(line.slice(line.lastIndexOf(' ') + 1));
    else if (line.startsWith(`${name}_sum`)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return { counts, count, sum };
}

/** after − before: the observations made between two scrapes. */
export function since(after: Buckets, before: Buckets): Buckets {
  const counts = new Map<number, number>();
  for (const [bound, n] of after.counts) counts.set(bound, n - (before.counts.get(bound) ?? 0));
  return { counts, count: after.count - before.count, sum: after.sum - before.sum };
}

/** The smallest bucket bound holding at least p% of the observations (seconds), or NaN if none. */
export function bucketPercentile(h: Buckets, p: number): number {
  if (h.count === 0) return Number.NaN;
  const want = (p / 100) * h.count;
  for (const bound of [...h.counts.keys()].sort((a, b) => a - b)) if (h.counts.get(bound)! >= want) return bound;
  return Number.POSITIVE_INFINITY;
}

/** How many observations were at most `bound` seconds. */
export function atMost(h: Buckets, bound: number): number {
  return h.counts.get(bound) ?? Number.NaN;
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function gauge(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : Number.NaN;
}
