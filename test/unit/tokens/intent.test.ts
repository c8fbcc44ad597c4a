// readIntent (SPEC "Tokens": printable text, at most 256 bytes). Node gives header values as
// latin1 (one char per byte); the bytes are UTF-8.
import { describe, expect, it } from 'vitest';
import { readIntent } from '../../../src/tokens/intent.ts';

const wire = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');

describe('readIntent', () => {
  it('returns printable ASCII as is, and undefined when absent', () => {
    expect(readIntent('refund INC-42')).toBe('refund INC-42');
    expect(readIntent(undefined)).toBeUndefined();
  });

  it.each(['café', '退款 ☕', 'Ω≈ç√', '🙂 emoji', 'é'.repeat(128)])('decodes UTF-8 %j from its wire bytes', (text) => {
    expect(readIntent(wire(text))).toBe(text);
  });

  it.each([
    ['empty', ''],
    ['257 ASCII bytes', 'x'.repeat(257)],
    ['257 UTF-8 bytes in 129 UTF-16 units', wire(`${'é'.repeat(128)}x`)],
    ['a lone latin1 byte (not UTF-8)', 'caf\u00e9'],
    ['an overlong encoding', '\u00c0\u00af'],
    ['an encoded surrogate', wire('a') + '\u00ed\u00a0\u0080'],
    ['a C0 control', 'a\tb'],
    ['DEL', 'a\u007fb'],
    ['a C1 control in UTF-8', wire('a\u0085b')],
    ['a line separator in UTF-8', wire('a\u2028b')],
    ['a char no wire byte gives', 'a\u0100'],
  ])('refuses %s', (_name, value) => {
    expect(readIntent(value)).toBeNull();
  });

  it('refuses a repeated header', () => {
    expect(readIntent(['a', 'b'])).toBeNull();
  });
});
