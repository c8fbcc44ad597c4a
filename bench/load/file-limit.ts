// Open-file limits for the connection-scale case: 10,000 connections need more descriptors than
// a shell's default soft limit (often 1,024) on both ends. The soft limit may be raised up to the
// hard one by anyone, the hard one only by root; the spawned process gets the raise through
// `sh -c 'ulimit -n N; exec …'` (exec keeps the pid, so /proc readings still name the process).
import { spawnSync } from 'node:child_process';

/** The soft and hard open-file limits a child shell starts with (Infinity for "unlimited"). */
export function fileLimits(): { soft: number; hard: number } {
  const read = (flag: string) => {
    const out = spawnSync('sh', ['-c', `ulimit ${flag}`], { encoding: 'utf8' }).stdout.trim();
    return out === 'unlimited' ? Infinity : Number(out);
  };
  return { soft: read('-Sn'), hard: read('-Hn') };
}

/**
 * The limit to give a process that must hold `needed` descriptors: `needed` when the hard limit
 * allows it (or we are root, who may raise it), else the hard limit.
 */
export function reachableLimit(needed: number, limits = fileLimits()): number {
  if (process.getuid?.() === 0) return needed;
  return Math.min(needed, limits.hard);
}

/** `command args` wrapped so that it runs with an open-file limit of `files`. */
export function withFileLimit(files: number, command: string, args: string[]): [string, string[]] {
  return ['sh', ['-c', `ulimit -n ${files} && exec "$0" "$@"`, command, ...args]];
}
