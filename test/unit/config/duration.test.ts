import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../../src/config/duration.ts';

describe('parseDuration', () => {
  it.each([
    ['250ms', 250],
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['0s', 0],
    ['0ms', 0],
    ['1.5s', 1_500],
    ['0.5m', 30_000],
    ['2h', 7_200_000],
    [' 10s ', 10_000],
  ])('%j is %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['', 'soon', '30', 's', '30 s', '-1s', '+1s', '1d', '30S', '1H', '1e3s', '.5s', '1.s', '1s2', '1m30s', 'Infinity', 'NaNs'])(
    'rejects %j',
    (text) => {
      expect(parseDuration(text)).toBeUndefined();
    },
  );
});

describe('formatDuration', () => {
  it.each([
    [3_600_000, '1h'],
    [7_200_000, '2h'],
    [300_000, '5m'],
    [90_000, '90s'],
    [30_000, '30s'],
    [1_500, '1500ms'],
    [250, '250ms'],
    [0, '0ms'],
  ])('%d ms is %j', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it.each([0, 1, 250, 1_000, 1_500, 60_000, 61_000, 3_600_000, 5_400_000])('round-trips %d ms through parseDuration', (ms) => {
    expect(parseDuration(formatDuration(ms))).toBe(ms);
  });
});
