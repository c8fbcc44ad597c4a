// Summarises a V8 sampling heap profile (.heapprofile): bytes allocated per site, with the two
// callers above it, largest first; with a request count, bytes per request.
// Usage: node bench/alloc/summary.ts FILE.heapprofile [N] [requests]
import { readFileSync } from 'node:fs';

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}
const profile = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as { head: ProfileNode };
const top = Number(process.argv[3] ?? 30);
const requests = Number(process.argv[4] ?? NaN);
const bySite = new Map<string, number>();
const label = (n: ProfileNode) => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.replace(/^.*\/(node_modules\/|src\/)/, '$1')}:${n.callFrame.lineNumber + 1}`;
const walk = (node: ProfileNode, callers: string[]): void => {
  const chain = [label(node), ...callers].slice(0, 3);
  if (node.selfSize > 0) bySite.set(chain.join(' < '), (bySite.get(chain.join(' < ')) ?? 0) + node.selfSize);
  for (const child of node.children) walk(child, chain);
};
walk(profile.head, []);
const total = [...bySite.values()].reduce((a, b) => a + b, 0);
process.stdout.write(`sampled: ${(total / 2 ** 20).toFixed(1)} MiB${Number.isFinite(requests) ? `, ${(total / requests).toFixed(0)} bytes per request` : ''}\n`);
for (const [site, bytes] of [...bySite].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  process.stdout.write(`${((bytes / total) * 100).toFixed(1).padStart(5)}%  ${site}\n`);
}
