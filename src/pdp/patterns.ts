// Glob patterns of policies and grants (SPEC "Tokens", "Embedded PDP policy"), compiled once:
// actions: `orders.*` matches one dot-separated segment, a lone `*` matches every action;
// resources: `order:*` matches within one colon-separated part, a lone `*` matches every resource.
// Subjects use the SPIFFE patterns of identity.allow.
export interface Matcher {
  matches(value: string): boolean;
}

const EVERYTHING: Matcher = { matches: () => true };

function escapeRegExp(text: string): string {
  return text.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
}

function compile(patterns: readonly string[], star: string): Matcher {
  if (patterns.includes('*')) return EVERYTHING;
  const exact = new Set(patterns.filter((p) => !p.includes('*')));
  const wild = patterns.filter((p) => p.includes('*'));
  if (wild.length === 0) return { matches: (value) => exact.has(value) };
  const re = new RegExp(`^(?:${wild.map((p) => p.split('*').map(escapeRegExp).join(star)).join('|')})$`);
  return { matches: (value) => exact.has(value) || re.test(value) };
}

export function actionMatcher(patterns: readonly string[]): Matcher {
  return compile(patterns, '[^.]+');
}

export function resourceMatcher(patterns: readonly string[]): Matcher {
  return compile(patterns, '[^:]+');
}
