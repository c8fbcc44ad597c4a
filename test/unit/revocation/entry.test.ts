// The revocation entry parser (SPEC "Fleet-wide revocation"): the stream's fields and the admin
// API's body alike; a malformed entry is a value naming the problem, never a throw.
import { describe, expect, it } from 'vitest';
import { compareStreamIds, entryFields, parseEntry, streamIdTime } from '../../../src/revocation/entry.ts';

const SUB = 'spiffe://example.org/ns/prod/sa/support-bot';

describe('parseEntry', () => {
  it.each([
    [{ jti: '7f3a', reason: 'task-done' }, { jti: '7f3a', reason: 'task-done' }],
    [{ sub: SUB, by: 'soar' }, { sub: SUB, by: 'soar' }],
    [{ posture_sub: SUB }, { postureSub: SUB }],
    [{ jti: 'a', sub: SUB }, { jti: 'a', sub: SUB }],
    [{ jti: 'a', exp: '1800000000' }, { jti: 'a', expMs: 1_800_000_000_000 }],
    [{ jti: 'a', exp: 1800000000 }, { jti: 'a', expMs: 1_800_000_000_000 }],
    // Other tools may add their own fields to a stream entry.
    [{ jti: 'a', ticket: 'INC-42' }, { jti: 'a' }],
  ])('%j is %j', (fields, entry) => {
    const parsed = parseEntry(fields);
    expect(parsed.ok).toBe(true);
    expect(parsed.ok && Object.fromEntries(Object.entries(parsed.entry).filter(([, v]) => v !== undefined))).toEqual(entry);
  });

  it.each([
    [{}, 'no jti, sub or posture_sub field'],
    [{ foo: 'bar' }, 'no jti, sub or posture_sub field'],
    [{ jti: '' }, 'jti: expected a non-empty string'],
    [{ jti: 42 }, 'jti: expected a non-empty string'],
    [{ sub: 'not-spiffe' }, 'sub: '],
    [{ sub: 'spiffe://example.org/ns//sa' }, 'sub: '],
    [{ posture_sub: 'https://example.org' }, 'posture_sub: '],
    [{ jti: 'a', exp: 'soon' }, 'exp: expected unix seconds (digits)'],
    [{ jti: 'a', exp: '-5' }, 'exp: expected unix seconds (digits)'],
    [{ jti: 'a', reason: 'x'.repeat(257) }, 'reason: longer than 256 characters'],
    [{ jti: 'a', by: 'forged\n{"level":30}' }, 'by: contains a control character'],
  ])('%j is refused: %s', (fields, problem) => {
    const parsed = parseEntry(fields as Record<string, unknown>);
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.problem.startsWith(problem)).toBe(true);
  });

  it('strict (the admin API): an unknown field is refused, not ignored', () => {
    expect(parseEntry({ jtI: 'a' }, true)).toEqual({ ok: false, problem: 'jtI: unknown field (expected jti, sub, posture_sub, exp, reason, by)' });
  });

  it('entryFields writes back what parseEntry reads', () => {
    const fields = { jti: 'a', sub: SUB, posture_sub: SUB, exp: '1800000000', reason: 'r', by: 'b' };
    const parsed = parseEntry(fields);
    expect(parsed.ok && entryFields(parsed.entry)).toEqual(fields);
  });
});

describe('stream ids', () => {
  it('their time, and their order as Redis has it', () => {
    expect(streamIdTime('1733090000000-7')).toBe(1_733_090_000_000);
    expect(streamIdTime('local')).toBeUndefined();
    expect(compareStreamIds('5-10', '5-9')).toBe(1);
    expect(compareStreamIds('10-0', '9-99')).toBe(1);
    expect(compareStreamIds('9-1', '9-1')).toBe(0);
    expect(compareStreamIds('1733090000000-0', '1733090000001-0')).toBe(-1);
  });
});
