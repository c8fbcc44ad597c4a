// The table-driven field checks of the request head answer exactly as the RegExps they replace
// on the hot path, for any string (latin1, controls, and code units above U+00FF).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BAD_TARGET, BAD_VALUE_WRITTEN, TOKEN, badTarget, badValueWritten, isToken } from '../../../src/forward/http-syntax.ts';

// Strings weighted towards the edges: every byte value, and a few code units above it.
const unit = fc.oneof(fc.integer({ min: 0, max: 0xff }), fc.constantFrom(0x100, 0x10d, 0x2028, 0xfeff, 0xd800, 0xffff)).map((c) => String.fromCharCode(c));
const text = fc.oneof(fc.array(unit, { maxLength: 40 }).map((a) => a.join('')), fc.string(), fc.stringMatching(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{0,20}$/));

describe('http-syntax table checks', () => {
  it('isToken is TOKEN.test, badValueWritten is BAD_VALUE_WRITTEN.test, badTarget is BAD_TARGET.test', () => {
    fc.assert(
      fc.property(text, (s) => {
        expect(isToken(s)).toBe(TOKEN.test(s));
        expect(badValueWritten(s)).toBe(BAD_VALUE_WRITTEN.test(s));
        expect(badTarget(s)).toBe(BAD_TARGET.test(s));
      }),
      { numRuns: 5000 },
    );
  });

  it('agrees on every single character from U+0000 to U+FFFF', () => {
    for (let c = 0; c <= 0xffff; c++) {
      const s = String.fromCharCode(c);
      expect([isToken(s), badValueWritten(s), badTarget(s)]).toEqual([TOKEN.test(s), BAD_VALUE_WRITTEN.test(s), BAD_TARGET.test(s)]);
    }
    expect(isToken('')).toBe(false);
  });
});
