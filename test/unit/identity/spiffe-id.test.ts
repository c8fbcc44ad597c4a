import { describe, expect, it } from 'vitest';
import { parseSpiffeId, parseTrustDomain, SpiffeIdError } from '../../../src/identity/spiffe-id.ts';

function errorOf(fn: () => unknown): SpiffeIdError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(SpiffeIdError);
    return error as SpiffeIdError;
  }
  throw new Error('expected a SpiffeIdError, nothing was thrown');
}

describe('parseSpiffeId: valid IDs', () => {
  it.each([
    ['spiffe://example.org/ns/prod/sa/orders-api', 'example.org', '/ns/prod/sa/orders-api'],
    ['spiffe://example.org', 'example.org', ''],
    ['spiffe://example.org/a', 'example.org', '/a'],
    ['spiffe://my-td_1.example.org/Path.With-Mixed_Case/123', 'my-td_1.example.org', '/Path.With-Mixed_Case/123'],
    ['spiffe://td/...', 'td', '/...'],
    ['spiffe://td/.a/a./..b', 'td', '/.a/a./..b'],
    ['spiffe://1.2.3.4/x', '1.2.3.4', '/x'],
  ])('accepts %j', (text, trustDomain, path) => {
    expect(parseSpiffeId(text)).toEqual({ trustDomain, path, uri: text });
  });

  it('accepts an ID of exactly 2048 bytes', () => {
    const prefix = 'spiffe://example.org/';
    const text = prefix + 'a'.repeat(2048 - prefix.length);
    expect(text.length).toBe(2048);
    expect(parseSpiffeId(text).uri).toBe(text);
  });
});

describe('parseSpiffeId: invalid IDs', () => {
  it.each([
    ['uppercase trust domain', 'spiffe://Example.org/a', /lowercase/],
    ['uppercase scheme', 'SPIFFE://example.org/a', /scheme/],
    ['mixed-case scheme', 'Spiffe://example.org/a', /scheme/],
    ['other scheme', 'https://example.org/a', /scheme/],
    ['no scheme', 'example.org/a', /scheme/],
    ['single slash', 'spiffe:/example.org/a', /scheme/],
    ['port', 'spiffe://example.org:443/a', /port/],
    ['userinfo', 'spiffe://user@example.org/a', /userinfo/],
    ['userinfo with password', 'spiffe://user:pw@example.org/a', /port|userinfo/],
    ['empty segment', 'spiffe://example.org/a//b', /empty segment/],
    ['leading empty segment', 'spiffe://example.org//a', /empty segment/],
    ['"." segment', 'spiffe://example.org/a/./b', /"\."/],
    ['".." segment', 'spiffe://example.org/a/../b', /"\.\."/],
    ['final ".." segment', 'spiffe://example.org/a/..', /"\.\."/],
    ['percent-encoding', 'spiffe://example.org/a%20b', /percent/],
    ['percent-encoded unreserved', 'spiffe://example.org/%61', /percent/],
    ['query', 'spiffe://example.org/a?x=1', /query/],
    ['fragment', 'spiffe://example.org/a#f', /fragment/],
    ['trailing slash', 'spiffe://example.org/a/', /empty segment/],
    ['trailing slash on the trust domain', 'spiffe://example.org/', /empty segment/],
    ['missing trust domain', 'spiffe:///a', /missing/],
    ['nothing after the scheme', 'spiffe://', /missing/],
    ['space in path', 'spiffe://example.org/a b', /invalid character/],
    ['colon in path', 'spiffe://example.org/a:b', /invalid character/],
    ['tilde in path', 'spiffe://example.org/~a', /invalid character/],
    ['non-ASCII in path', 'spiffe://example.org/caf\u00e9', /invalid character/],
    ['backslash in path', 'spiffe://example.org/a\\b', /invalid character/],
    ['invalid trust domain char', 'spiffe://exa!mple.org/a', /invalid character/],
    ['trust domain with "*"', 'spiffe://*.example.org/a', /invalid character/],
    ['query on the trust domain', 'spiffe://example.org?x', /./],
    ['empty string', '', /scheme/],
  ])('rejects %s: %j', (_label, text, message) => {
    expect(errorOf(() => parseSpiffeId(text)).message).toMatch(message);
  });

  it('rejects an ID longer than 2048 bytes', () => {
    const prefix = 'spiffe://example.org/';
    const text = prefix + 'a'.repeat(2049 - prefix.length);
    expect(errorOf(() => parseSpiffeId(text)).message).toMatch(/2048/);
  });

  it('accepts a trust domain of 255 bytes and rejects one of 256 (SPIFFE ID standard, 2.1)', () => {
    const label = (n: number) => 'a'.repeat(n);
    const td255 = `${label(63)}.${label(63)}.${label(63)}.${label(63)}`;
    expect(td255.length).toBe(255);
    expect(parseSpiffeId(`spiffe://${td255}/a`).trustDomain).toBe(td255);
    expect(errorOf(() => parseSpiffeId(`spiffe://${td255}b/a`)).message).toMatch(/255/);
  });

  it('errors are SpiffeIdError with that name', () => {
    const error = errorOf(() => parseSpiffeId('nope'));
    expect(error.name).toBe('SpiffeIdError');
    expect(error).toBeInstanceOf(Error);
  });
});

describe('parseTrustDomain', () => {
  it.each(['example.org', 'a', 'a-b_c.1', 'td'])('accepts %j and returns it', (name) => {
    expect(parseTrustDomain(name)).toBe(name);
  });

  it.each([
    ['', /missing/],
    ['Example.org', /lowercase/],
    ['example.org:8443', /port/],
    ['u@example.org', /userinfo/],
    ['example.org/a', /invalid character/],
    ['spiffe://example.org', /invalid character|port/],
    ['exa mple', /invalid character/],
    ['x'.repeat(256), /longer than 255 bytes/],
  ])('rejects %j', (name, message) => {
    expect(errorOf(() => parseTrustDomain(name)).message).toMatch(message);
  });
});
