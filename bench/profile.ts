// Summarises a V8 .cpuprofile: self time per function (top N), to find hot spots on the
// request path. Usage: node bench/profile.ts FILE.cpuprofile [N]
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount: number;
  children?: number[];
}
const profile = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
const self = new Map<string, number>();
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
for (const n of profile.nodes) {
  const url = n.callFrame.url.replace(/^.*\/(node_modules\/|src\/)/, '$1');
  const key = `${n.callFrame.functionName || '(anonymous)'} ${url}:${n.callFrame.lineNumber + 1}`;
  self.set(key, (self.get(key) ?? 0) + n.hitCount);
}
// Percentages of busy time: idle is left out.
const total = [...self.entries()].filter(([k]) => !k.startsWith('(idle)')).reduce((a, [, b]) => a + b, 0);
const parent = new Map<number, Node>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n);
const label = (n: Node) => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.replace(/^.*\/(node_modules\/|src\/)/, '$1')}:${n.callFrame.lineNumber + 1}`;
const top = [...self.entries()].filter(([k]) => !k.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, Number(process.argv[3] ?? 40));
for (const [key, hits] of top) {
  // The callers that account for this function's samples, up two frames.
  const callers = new Map<string, number>();
  for (const n of profile.nodes) {
    if (label(n) !== key || n.hitCount === 0) continue;
    const p1 = parent.get(n.id);
    const p2 = p1 ? parent.get(p1.id) : undefined;
    const chain = [p1, p2].filter(Boolean).map((x) => label(x!)).join(' < ');
    callers.set(chain, (callers.get(chain) ?? 0) + n.hitCount);
  }
  const main = [...callers.entries()].sort((a, b) => b[1] - a[1])[0];
  process.stdout.write(`${((hits / total) * 100).toFixed(1).padStart(5)}%  ${key}${main ? `   ← ${main[0]}` : ''}\n`);
}
void byId;
