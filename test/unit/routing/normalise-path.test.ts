import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isBadPath, normaliseTarget, type NormaliseOptions } from '../../../src/routing/normalise-path.ts';

const strict: NormaliseOptions = { allowPathParams: false };
const withParams: NormaliseOptions = { allowPathParams: true };

/** The accepted result, failing the test with the refusal reason otherwise. */
function accept(target: string, options: NormaliseOptions = strict): { path: string; query: string } {
  const result = normaliseTarget(target, options);
  if (isBadPath(result)) throw new Error(`expected ${JSON.stringify(target)} to be accepted, got bad: ${result.bad}`);
  return { path: result.path, query: result.query };
}

function rejected(target: string, options: NormaliseOptions = strict): boolean {
  return isBadPath(normaliseTarget(target, options));
}

describe('normaliseTarget: request-target forms', () => {
  it.each(['', '*', 'http://x/', 'https://example.org/admin', 'example.org:443', 'admin', '?x=1', '#frag', ' /a'])(
    'rejects non-origin-form target %j',
    (target) => {
      const result = normaliseTarget(target, strict);
      expect(isBadPath(result)).toBe(true);
      if (isBadPath(result)) expect(result.bad).toMatch(/\S/);
    },
  );

  it('accepts the root', () => {
    expect(accept('/')).toEqual({ path: '/', query: '' });
  });

  it('accepts a plain path unchanged', () => {
    expect(accept('/orders/42/refund')).toEqual({ path: '/orders/42/refund', query: '' });
  });

  it('keeps case: matching is case-sensitive, so the path is not folded', () => {
    expect(accept('/Admin/ABC').path).toBe('/Admin/ABC');
  });
});

describe('normaliseTarget: query', () => {
  it('splits at the first "?" and keeps the query unchanged, never using it for the path', () => {
    expect(accept('/a?x=/../admin')).toEqual({ path: '/a', query: '?x=/../admin' });
  });

  it('keeps later "?" characters inside the query', () => {
    expect(accept('/a/b?x=1?y=2')).toEqual({ path: '/a/b', query: '?x=1?y=2' });
  });

  it('keeps escapes in the query exactly as sent (not decoded, not upper-cased)', () => {
    expect(accept('/a?q=%2f%2e%2e%zz%c3%a9;x\\y')).toEqual({ path: '/a', query: '?q=%2f%2e%2e%zz%c3%a9;x\\y' });
  });

  it('keeps an empty query "?"', () => {
    expect(accept('/a?')).toEqual({ path: '/a', query: '?' });
  });

  it('normalises the path in front of a query', () => {
    expect(accept('//x/./y/../z/?a=b')).toEqual({ path: '/x/z/', query: '?a=b' });
  });

  it('does not treat a "/" inside the query as a path separator', () => {
    expect(accept('/?/admin')).toEqual({ path: '/', query: '?/admin' });
  });
});

describe('normaliseTarget: rejected characters and escapes', () => {
  it.each(['/a#b', '/#', '/a?x#y', '/a?x=1#', '/a%23#'])('rejects "#" anywhere: %j', (target) => {
    expect(rejected(target)).toBe(true);
  });

  it.each(['/a\\b', '/\\admin', '/a/\\/b', '/..\\admin'])('rejects a raw backslash: %j', (target) => {
    expect(rejected(target)).toBe(true);
  });

  it.each(['/a\x00b', '/a\tb', '/a\nb', '/a\rb', '/a\x1fb', '/a\x7fb', '/a?x=\n', '/a?x=\x00'])(
    'rejects a control character: %j',
    (target) => {
      expect(rejected(target)).toBe(true);
    },
  );

  it.each(['/%', '/a%', '/%2', '/a%2', '/%zz', '/%g0', '/%0g', '/a%2/b', '/%%41', '/%-1'])(
    'rejects an invalid escape: %j',
    (target) => {
      expect(rejected(target)).toBe(true);
    },
  );

  it('rejects a truncated escape just before the query', () => {
    expect(rejected('/a%4?x')).toBe(true);
    expect(rejected('/a%?x')).toBe(true);
  });

  it.each(['/a%2Fb', '/a%2fb', '/a%5Cb', '/a%5cb', '/a%00b', '/%2F', '/%2e%2e%2fadmin', '/admin%2F'])(
    'rejects an encoded "/", "\\" or NUL: %j',
    (target) => {
      expect(rejected(target)).toBe(true);
    },
  );

  it.each(['/a;b', '/a;jsessionid=1', '/admin;/x', '/;'])('rejects ";" by default: %j', (target) => {
    expect(rejected(target)).toBe(true);
  });

  it('accepts ";" when allowPathParams is true and keeps it', () => {
    expect(accept('/a;b=1/c', withParams)).toEqual({ path: '/a;b=1/c', query: '' });
  });

  it('accepts ";" in the query even when path params are not allowed', () => {
    expect(accept('/a?x=1;y=2')).toEqual({ path: '/a', query: '?x=1;y=2' });
  });

  it('keeps an encoded ";" (%3B) as an escape: it is not a path parameter', () => {
    expect(accept('/a%3bb').path).toBe('/a%3Bb');
  });

  it.each(['/..', '/../', '/../a', '/a/../..', '/a/../../b', '/%2e%2e/', '/%2E%2E', '/.%2e', '/%2e.', '/./..', '/a/./../..', '//..'])(
    'rejects ".." above the root: %j',
    (target) => {
      const result = normaliseTarget(target, strict);
      expect(isBadPath(result)).toBe(true);
    },
  );

  it.each(['/a b', '/a"b', '/a<b', '/a>b', '/a{b}', '/a|b', '/a^b', '/a`b', '/caf\u00e9', '/a\u2028b'])(
    'rejects a character that is not allowed raw in a path: %j',
    (target) => {
      expect(rejected(target)).toBe(true);
    },
  );

  it('rejects with a human-readable reason', () => {
    const result = normaliseTarget('/a%2Fb', strict);
    expect(isBadPath(result) ? result.bad : '').toContain('encoded');
  });
});

describe('normaliseTarget: decoding and normalisation', () => {
  it.each([
    ['/%61', '/a'],
    ['/%41%5A', '/AZ'],
    ['/%7E', '/~'],
    ['/%7e', '/~'],
    ['/%2D%2e%5F%7E', '/-._~'],
    ['/%30%39', '/09'],
    ['/x%2Ey', '/x.y'],
  ])('decodes an unreserved escape: %j -> %j', (target, path) => {
    expect(accept(target).path).toBe(path);
  });

  it('decodes %2E%2E and then resolves it as ".."', () => {
    expect(accept('/a/b/%2E%2E/c').path).toBe('/a/c');
    expect(accept('/a/%2e%2e/admin').path).toBe('/admin');
    expect(accept('/a/%2e/b').path).toBe('/a/b');
  });

  it.each([
    ['/%c3%a9', '/%C3%A9'],
    ['/%C3%A9', '/%C3%A9'],
    ['/a%20b', '/a%20b'],
    ['/%3a%40%25', '/%3A%40%25'],
    ['/%ff', '/%FF'],
    ['/%3f', '/%3F'],
    ['/%23', '/%23'],
  ])('keeps other escapes as uppercase %%XX: %j -> %j', (target, path) => {
    expect(accept(target).path).toBe(path);
  });

  it('does not decode %25 into a new escape (no double decoding)', () => {
    expect(accept('/%252F').path).toBe('/%252F');
    expect(accept('/%2561').path).toBe('/%2561');
  });

  it.each([
    ['//admin', '/admin'],
    ['///admin', '/admin'],
    ['/a//b', '/a/b'],
    ['/a///b//c', '/a/b/c'],
    ['//', '/'],
    ['///', '/'],
  ])('merges repeated "/" and never reads a host: %j -> %j', (target, path) => {
    expect(accept(target).path).toBe(path);
  });

  it('treats //host/path as a path, not an authority', () => {
    expect(accept('//evil.example/admin?x')).toEqual({ path: '/evil.example/admin', query: '?x' });
  });

  it.each([
    ['/./a', '/a'],
    ['/a/./b', '/a/b'],
    ['/a/b/../c', '/a/c'],
    ['/a/b/../../c', '/c'],
    ['/a/..', '/'],
    ['/a/../', '/'],
    ['/a/b/..', '/a/'],
    ['/a/.', '/a/'],
    ['/.', '/'],
    ['/a/b/./../c/./d/', '/a/c/d/'],
    ['/public/../admin', '/admin'],
    ['/a/..b/c', '/a/..b/c'],
    ['/a/.b/c', '/a/.b/c'],
    ['/a/.../b', '/a/.../b'],
  ])('resolves "." and "..": %j -> %j', (target, path) => {
    expect(accept(target).path).toBe(path);
  });

  it.each([
    ['/a/', '/a/'],
    ['/a/b/', '/a/b/'],
    ['/a//', '/a/'],
    ['/a', '/a'],
  ])('keeps a trailing slash distinct: %j -> %j', (target, path) => {
    expect(accept(target).path).toBe(path);
  });

  it.each(["/a!$&'()*+,=:@b", '/user@host:8080', '/a-b_c.d~e'])('accepts sub-delims, ":" and "@" raw: %j', (target) => {
    expect(accept(target).path).toBe(target);
  });
});

// Lowercase hex escapes in the output would mean an unnormalised escape slipped through.
const LOWER_ESCAPE = /%(?:[0-9a-f][a-f]|[a-f][0-9a-f])/;

describe('normaliseTarget: properties', () => {
  const pathChars = fc.constantFrom(
    '/', '/', '/', '.', '..', '%', '%2e', '%2E', '%2f', '%2F', '%5c', '%00', '%41', '%7e', '%c3', '%a9', '%20', '%25',
    'a', 'B', '9', '-', '_', '~', ';', '?', '#', '\\', ':', '@', '!', '\t', ' ', 'é', 'z', 'f', '2',
  );
  const targetLike = fc.array(pathChars, { maxLength: 24 }).map((parts) => '/' + parts.join(''));
  const anyTarget = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), targetLike, targetLike.map((t) => t.slice(1)));

  function checkAccepted(path: string, options: NormaliseOptions): void {
    expect(path.startsWith('/')).toBe(true);
    expect(path).not.toContain('//');
    expect(path).not.toMatch(/\/\.\.?(?:\/|$)/);
    expect(path).not.toMatch(/%2F|%5C|%00/i);
    expect(path).not.toMatch(LOWER_ESCAPE);
    expect(path).not.toMatch(/[?#\\\s]/);
    if (!options.allowPathParams) expect(path).not.toContain(';');
    const again = normaliseTarget(path, options);
    expect(isBadPath(again)).toBe(false);
    if (!isBadPath(again)) {
      expect(again.path).toBe(path);
      expect(again.query).toBe('');
    }
  }

  for (const options of [strict, withParams]) {
    it(`never throws; accepted paths are canonical fixed points (allowPathParams: ${options.allowPathParams})`, () => {
      fc.assert(
        fc.property(anyTarget, (target) => {
          const result = normaliseTarget(target, options);
          if (isBadPath(result)) {
            expect(typeof result.bad).toBe('string');
            return;
          }
          checkAccepted(result.path, options);
          const q = target.indexOf('?');
          expect(result.query).toBe(q === -1 ? '' : target.slice(q));
        }),
        { numRuns: 3000 },
      );
    });
  }

  it('the generator actually produces accepted targets (guards against a vacuous property)', () => {
    let accepted = 0;
    fc.assert(
      fc.property(fc.array(fc.constantFrom('/', 'a', '.', '..', '%41', '%c3'), { maxLength: 10 }), (parts) => {
        const result = normaliseTarget('/' + parts.join(''), strict);
        if (!isBadPath(result)) accepted++;
      }),
      { numRuns: 200 },
    );
    expect(accepted).toBeGreaterThan(100);
  });
});
