// docs/CONFIG.md is generated from the schema and must stay in step with it.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { configReference, formatDuration, referenceRows, RESTART } from '../../../src/config/reference.ts';
import { configSchema } from '../../../src/config/schema.ts';
import { parseDuration } from '../../../src/config/duration.ts';

const CONFIG_MD = new URL('../../../docs/CONFIG.md', import.meta.url);

describe('docs/CONFIG.md', () => {
  it('is what `npm run docs:config` writes from the current schema', () => {
    // When this fails: run `npm run docs:config` and commit docs/CONFIG.md.
    expect(readFileSync(CONFIG_MD, 'utf8')).toBe(configReference());
  });

  it('lists every key of the schema with a type, a default and whether a reload applies it', () => {
    const rows = referenceRows();
    const keys = rows.map((r) => r.key);
    for (const top of Object.keys(configSchema.shape)) expect(keys).toContain(top);
    expect(rows.find((r) => r.key === 'cache.allowTtl')).toEqual({ key: 'cache.allowTtl', type: 'duration', default: '`30s`', reload: 'reload' });
    expect(rows.find((r) => r.key === 'listen.port')).toMatchObject({ default: '`8443`', reload: expect.stringMatching(/^restart/) });
    expect(rows.find((r) => r.key === 'upstream.url')).toMatchObject({ default: '**required**' });
    expect(rows.find((r) => r.key === 'routes[].sensitivity')?.type).toContain('`critical`');
    for (const row of rows) expect([row.type, row.default, row.reload].every((cell) => cell.length > 0), row.key).toBe(true);
  });

  it('every key the restart table names is a key of the schema (a renamed key cannot go stale)', () => {
    const keys = new Set(referenceRows().map((r) => r.key));
    for (const key of Object.keys(RESTART)) expect(keys.has(key), key).toBe(true);
  });

  it('walks keys it has never seen: new sections, lists of mappings, maps, unions, durations', () => {
    const duration = z.string().transform((t, ctx) => parseDuration(t) ?? (ctx.addIssue({ code: 'custom', message: 'x' }), z.NEVER));
    const schema = z.strictObject({
      accessLog: z.strictObject({ file: z.union([z.literal('off'), z.string().min(1)]).default('off') }).prefault({}),
      revocation: z.strictObject({ maxEntries: z.number().int().min(1).default(1_000_000), retain: duration.default(86_400_000), source: z.enum(['local', 'redis']).default('local') }).prefault({}),
      signals: z.strictObject({ transmitters: z.array(z.strictObject({ issuer: z.string(), audience: z.array(z.string()).optional() })).default([]), bearer: z.record(z.string(), z.number()).optional() }).optional(),
      listen: z.strictObject({ protocols: z.array(z.enum(['h2', 'http/1.1'])).default(['h2', 'http/1.1']) }).prefault({}),
    });
    const rows = referenceRows(schema as never);
    expect(rows.map((r) => [r.key, r.type, r.default, r.reload])).toEqual([
      ['accessLog', 'mapping', '(its keys’ defaults)', 'per key'],
      ['accessLog.file', '`off` or string', '`off`', 'restart: the access log is opened once'],
      ['revocation', 'mapping', '(its keys’ defaults)', 'per key'],
      ['revocation.maxEntries', 'integer (≥ 1)', '`1000000`', 'reload'],
      ['revocation.retain', 'duration', '`24h`', 'reload'],
      ['revocation.source', '`local` \\| `redis`', '`local`', 'reload'],
      ['signals', 'mapping', '(none)', 'per key'],
      ['signals.transmitters', 'list of mapping', '`[]`', 'per key'],
      ['signals.transmitters[].issuer', 'string', '**required**', 'reload'],
      ['signals.transmitters[].audience', 'list of string', '(none)', 'reload'],
      ['signals.bearer', 'map of string to number', '(none)', 'reload'],
      ['listen', 'mapping', '(its keys’ defaults)', expect.stringMatching(/^restart/)],
      ['listen.protocols', 'list of `h2` \\| `http/1.1`', '`[h2, http/1.1]`', expect.stringMatching(/^restart/)],
    ]);
    expect(configReference(schema as never)).toContain('| `revocation.retain` | duration | `24h` | reload |');
  });
});

describe('formatDuration', () => {
  it('writes a default in the largest whole unit, as a user would', () => {
    expect([250, 2000, 300_000, 3_600_000, 86_400_000, 1500, 0].map(formatDuration)).toEqual(['250ms', '2s', '5m', '1h', '24h', '1500ms', '0ms']);
  });
});
