// Resident memory of a process, read from /proc: the one reading every RSS figure of the bench
// uses (the load cases, start-up, idle connections), so they are counted the same way.
import { readFileSync } from 'node:fs';

/** VmRSS of a process in MiB (Linux /proc), or NaN when it cannot be read. */
export function rssMiB(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) / 1024;
  } catch {
    return NaN;
  }
}
