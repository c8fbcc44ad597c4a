// A connection's bytes cut into chunks at given points, as a socket may hand them over: the
// parsers' tests (ours for requests and for the service's answers) check that no cut changes
// what they make of them.

/** `bytes` cut at each point (taken modulo its length + 1; repeats and order do not matter): views, no copies. */
export function split(bytes: Buffer, points: readonly number[]): Buffer[] {
  const cuts = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const cut of cuts) {
    chunks.push(bytes.subarray(from, cut));
    from = cut;
  }
  chunks.push(bytes.subarray(from));
  return chunks;
}
