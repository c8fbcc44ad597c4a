// A histogram for the request path, exposed through prom-client's registry as an ordinary
// Prometheus histogram. An observation is a bucket search and three additions on a memoised
// cell; prom-client's own `observe` hashes its label object on every call, which costs more
// than a cache-hit decision. The exposition (buckets, +Inf, _sum, _count) is the same.
import type { Registry } from 'prom-client';

export interface HistogramCell {
  readonly counts: Float64Array; // per bucket, not cumulative; the last slot is +Inf
  sum: number;
  count: number;
}

interface LabelledCell extends HistogramCell {
  readonly labels: Readonly<Record<string, string>>;
}

export class FastHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly buckets: readonly number[];
  private readonly labelName: string | undefined;
  private readonly cells = new Map<string, LabelledCell>();

  constructor(config: { name: string; help: string; buckets: readonly number[]; labelName?: string; registers: Registry[] }) {
    this.name = config.name;
    this.help = config.help;
    this.buckets = [...config.buckets].sort((a, b) => a - b);
    this.labelName = config.labelName;
    for (const registry of config.registers) registry.registerMetric(this as never);
  }

  /** The cell of one label value (or the only cell when the histogram has no label). */
  cell(value = ''): HistogramCell {
    let cell = this.cells.get(value);
    if (!cell) {
      const labels: Record<string, string> = this.labelName ? { [this.labelName]: value } : {};
      this.cells.set(value, (cell = { labels, counts: new Float64Array(this.buckets.length + 1), sum: 0, count: 0 }));
    }
    return cell;
  }

  observe(cell: HistogramCell, value: number): void {
    const buckets = this.buckets;
    let i = 0;
    while (i < buckets.length && value > buckets[i]!) i++;
    cell.counts[i]!++;
    cell.sum += value;
    cell.count++;
  }

  /** prom-client's Metric interface: what the registry serialises. */
  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: { labels: Record<string, string | number>; value: number; metricName: string }[] }> {
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    for (const cell of this.cells.values()) {
      let cumulative = 0;
      this.buckets.forEach((bound, i) => {
        cumulative += cell.counts[i]!;
        values.push({ labels: { le: bound, ...cell.labels }, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: '+Inf', ...cell.labels }, value: cell.count, metricName: `${this.name}_bucket` });
      values.push({ labels: { ...cell.labels }, value: cell.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...cell.labels }, value: cell.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.cells.clear();
  }
}
