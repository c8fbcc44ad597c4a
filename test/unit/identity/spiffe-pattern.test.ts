import { describe, expect, it } from 'vitest';
import { compileSpiffePatterns, spiffePatternToRegExp } from '../../../src/identity/spiffe-pattern.ts';

describe('compileSpiffePatterns', () => {
  it('an exact pattern matches only that ID', () => {
    const set = compileSpiffePatterns(['spiffe://example.org/ns/prod/sa/web']);
    expect(set.matches('spiffe://example.org/ns/prod/sa/web')).toBe(true);
    expect(set.matches('spiffe://example.org/ns/prod/sa/web2')).toBe(false);
    expect(set.matches('spiffe://example.org/ns/prod/sa/web/x')).toBe(false);
    expect(set.matches('spiffe://example.org/ns/prod/sa')).toBe(false);
  });

  it('"*" matches within one segment only', () => {
    const set = compileSpiffePatterns(['spiffe://example.org/ns/*/sa/web']);
    expect(set.matches('spiffe://example.org/ns/prod/sa/web')).toBe(true);
    expect(set.matches('spiffe://example.org/ns/staging/sa/web')).toBe(true);
    expect(set.matches('spiffe://example.org/ns/a/b/sa/web')).toBe(false);
    expect(set.matches('spiffe://example.org/ns/prod/sa/web/x')).toBe(false);
    expect(set.matches('spiffe://example.org/ns/prod/sa/api')).toBe(false);
  });

  it('"*" can be part of a segment', () => {
    const set = compileSpiffePatterns(['spiffe://example.org/sa/web-*']);
    expect(set.matches('spiffe://example.org/sa/web-1')).toBe(true);
    expect(set.matches('spiffe://example.org/sa/web-blue')).toBe(true);
    expect(set.matches('spiffe://example.org/sa/api-1')).toBe(false);
    expect(set.matches('spiffe://example.org/sa/web-1/x')).toBe(false);
  });

  it('"/**" matches the ID itself and anything below it, not a sibling with the same prefix', () => {
    const set = compileSpiffePatterns(['spiffe://example.org/ns/prod/**']);
    expect(set.matches('spiffe://example.org/ns/prod')).toBe(true);
    expect(set.matches('spiffe://example.org/ns/prod/sa/web')).toBe(true);
    expect(set.matches('spiffe://example.org/ns/prod/a/b/c/d')).toBe(true);
    expect(set.matches('spiffe://example.org/ns/production')).toBe(false);
    expect(set.matches('spiffe://example.org/ns/prodx/sa')).toBe(false);
    expect(set.matches('spiffe://example.org/ns')).toBe(false);
  });

  it('a trust-domain-wide tail does not match another trust domain sharing a prefix', () => {
    const set = compileSpiffePatterns(['spiffe://example.org/**']);
    expect(set.matches('spiffe://example.org/anything/here')).toBe(true);
    expect(set.matches('spiffe://example.org.evil.com/x')).toBe(false);
    expect(set.matches('spiffe://example.orgx/x')).toBe(false);
    expect(set.matches('spiffe://other.org/x')).toBe(false);
  });

  it('a trust-domain-wide tail never matches the root-path ID (no workload has it: X509-SVID rules)', () => {
    const set = compileSpiffePatterns(['spiffe://other.org/**']);
    expect(set.matches('spiffe://other.org')).toBe(false);
    expect(set.matches('spiffe://other.org/')).toBe(false);
    expect(set.matches('spiffe://other.org/a')).toBe(true);
    // A pattern with a path still matches its own ID, as before.
    expect(compileSpiffePatterns(['spiffe://other.org/a/**']).matches('spiffe://other.org/a')).toBe(true);
  });

  it('"." in a pattern is literal, not a regex wildcard', () => {
    const set = compileSpiffePatterns(['spiffe://example.org/a.b', 'spiffe://example.org/c.*']);
    expect(set.matches('spiffe://exampleXorg/a.b')).toBe(false);
    expect(set.matches('spiffe://example.org/aXb')).toBe(false);
    expect(set.matches('spiffe://example.org/c.d')).toBe(true);
    expect(set.matches('spiffe://example.org/cXd')).toBe(false);
  });

  it('combines "*" and "/**"', () => {
    const set = compileSpiffePatterns(['spiffe://example.org/ns/*/**']);
    expect(set.matches('spiffe://example.org/ns/prod')).toBe(true);
    expect(set.matches('spiffe://example.org/ns/prod/sa/web')).toBe(true);
    expect(set.matches('spiffe://example.org/other/prod')).toBe(false);
  });

  it('a set matches if any pattern matches; an empty set matches nothing', () => {
    const set = compileSpiffePatterns(['spiffe://a.org/x', 'spiffe://b.org/**']);
    expect(set.matches('spiffe://a.org/x')).toBe(true);
    expect(set.matches('spiffe://b.org/y/z')).toBe(true);
    expect(set.matches('spiffe://c.org/x')).toBe(false);
    expect(compileSpiffePatterns([]).matches('spiffe://a.org/x')).toBe(false);
  });

  it('regex metacharacters in a pattern are literal', () => {
    const re = spiffePatternToRegExp('spiffe://example.org/a+b(c)|d');
    expect(re.test('spiffe://example.org/a+b(c)|d')).toBe(true);
    expect(re.test('spiffe://example.org/aab')).toBe(false);
    expect(re.test('d')).toBe(false);
  });
});
