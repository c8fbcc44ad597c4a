// revocation.* (SPEC "Config file", "Fleet-wide revocation"): defaults, and every bad value
// answered with a message naming the key.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configFiles } from './config-files.ts';

const { dir, load, problems } = configFiles('revocation-keys');

describe('revocation.*', () => {
  it('defaults: local, the SPEC stream name, 30s staleness, 24h retain, 1,000,000 entries', () => {
    expect(load('').revocation).toEqual({ source: 'local', stream: 'portcullis:revocations', maxStaleness: 30_000, retain: 86_400_000, connectTimeout: 2_000, maxEntries: 1_000_000 });
  });

  it('redis: url, stream, durations; passwordFile resolved against the config file', () => {
    const config = load('revocation: { source: redis, url: "rediss://portcullis@redis.prod:6380/0", passwordFile: redis-pw, maxStaleness: 5s, retain: 48h }\n');
    expect(config.revocation).toMatchObject({ source: 'redis', url: 'rediss://portcullis@redis.prod:6380/0', passwordFile: join(dir, 'redis-pw'), maxStaleness: 5_000, retain: 172_800_000 });
  });

  it.each([
    ['revocation: { source: redis }\n', 'revocation.url: required when revocation.source is "redis"'],
    ['revocation: { source: redis, url: "http://redis:6379" }\n', 'revocation.url: expected "redis://host:port/db" or "rediss://host:port/db" (TLS)'],
    ['revocation: { source: kafka }\n', 'revocation.source: expected "local" or "redis", got "kafka"'],
    ['revocation: { source: redis, url: "redis://r", maxStaleness: 50ms }\n', 'revocation.maxStaleness: expected a duration between 100ms and 1h'],
    ['revocation: { source: redis, url: "redis://r", maxStaleness: 2h }\n', 'revocation.maxStaleness: expected a duration between 100ms and 1h'],
    ['revocation: { source: redis, url: "redis://r", retain: 1h }\n', 'revocation.retain: must be at least grants.maxLifetime (24h): a sidecar starting later would miss a revocation of a grant still valid'],
    ['grants: { maxLifetime: 2h }\nrevocation: { source: redis, url: "redis://r", retain: 1h }\n', 'revocation.retain: must be at least grants.maxLifetime (2h): a sidecar starting later would miss a revocation of a grant still valid'],
    ['revocation: { url: "redis://r" }\n', 'revocation.url: only used when revocation.source is "redis"'],
    ['revocation: { source: redis, url: "redis://r", strem: x }\n', 'revocation.strem: unknown key'],
  ])('%s → %s', (extra, message) => {
    expect(problems(extra)).toContain(message);
  });

  it('retain equal to grants.maxLifetime is enough', () => {
    expect(load('grants: { maxLifetime: 1h }\nrevocation: { source: redis, url: "redis://r", retain: 1h }\n').revocation.retain).toBe(3_600_000);
  });
});
