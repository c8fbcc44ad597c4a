// `identity.allow` and policy subject patterns: `*` matches within one path segment, a trailing
// `/**` matches the ID itself or anything below it, except that `spiffe://td/**` never matches
// the root-path `spiffe://td`: that is a trust domain's name, never a workload's X509-SVID
// (X509-SVID standard, 2), so no pattern may admit it. Compiled once per config load.
export interface SpiffePatternSet {
  matches(id: string): boolean;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
}

export function spiffePatternToRegExp(pattern: string): RegExp {
  let tail = '';
  let body = pattern;
  if (body.endsWith('/**')) {
    body = body.slice(0, -3);
    const root = body.startsWith('spiffe://') && !body.slice('spiffe://'.length).includes('/');
    tail = root ? '/.+' : '(?:/.*)?';
  } else if (body === '*' || body === '**') {
    return /^.*$/;
  }
  const source = body.split('*').map(escapeRegExp).join('[^/]*');
  return new RegExp(`^${source}${tail}$`);
}

export function compileSpiffePatterns(patterns: readonly string[]): SpiffePatternSet {
  const exact = new Set(patterns.filter((p) => !p.includes('*')));
  const wild = patterns.filter((p) => p.includes('*')).map(spiffePatternToRegExp);
  return {
    matches(id: string): boolean {
      if (exact.has(id)) return true;
      for (const re of wild) if (re.test(id)) return true;
      return false;
    },
  };
}
