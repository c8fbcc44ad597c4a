// `${NAME}` substitution in config values (README "Config"): through loadConfig, as a user hits it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config/load.ts';
import { substituteText } from '../../../src/config/env.ts';

const root = mkdtempSync(join(tmpdir(), 'portcullis-env-test-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;
const set: string[] = [];
afterEach(() => {
  for (const name of set.splice(0)) delete process.env[name];
});
function env(name: string, value: string): void {
  process.env[name] = value;
  set.push(name);
}

const config = (upstream: string, extra = '') => `identity:
  certFile: svid.pem
  keyFile: svid_key.pem
  bundleFile: bundle.pem
  trustDomains: [example.org]
  allow: ["spiffe://example.org/ns/prod/**"]
upstream: { url: "${upstream}", timeout: 2s }
pdp: { policyFile: policy.yaml }
${extra}`;

function write(text: string): string {
  const file = join(root, `c${++counter}.yaml`);
  writeFileSync(file, text);
  return file;
}

function problemsOf(text: string) {
  try {
    loadConfig(write(text));
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('${ENV} in config values', () => {
  it('replaces ${NAME} in any string value, inside text and in lists', () => {
    env('PORTCULLIS_TEST_PORT', '8080');
    env('PORTCULLIS_TEST_TD', 'example.org');
    const loaded = loadConfig(write(config('http://127.0.0.1:${PORTCULLIS_TEST_PORT}', 'grants: { audience: ["spiffe://${PORTCULLIS_TEST_TD}/ns/prod/sa/a"] }\n')));
    expect(loaded.upstream.url).toBe('http://127.0.0.1:8080');
    expect(loaded.grants.audience).toEqual(['spiffe://example.org/ns/prod/sa/a']);
  });

  it('an unset variable is a config error naming the key, its line and the variable', () => {
    delete process.env.PORTCULLIS_TEST_UNSET;
    const problems = problemsOf(config('http://127.0.0.1:${PORTCULLIS_TEST_UNSET}'));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ key: 'upstream.url', line: 7, message: 'environment variable PORTCULLIS_TEST_UNSET is not set (referenced as ${PORTCULLIS_TEST_UNSET})' });
  });

  it('a variable set to the empty string is substituted (the schema then judges the value)', () => {
    env('PORTCULLIS_TEST_EMPTY', '');
    const problems = problemsOf(config('http://127.0.0.1:8080', 'audit: { file: "${PORTCULLIS_TEST_EMPTY}" }\n'));
    expect(problems[0]).toMatchObject({ key: 'audit.file', message: 'must not be empty' });
  });

  it('$${ is a literal ${, and a substituted value is never substituted again', () => {
    env('PORTCULLIS_TEST_NESTED', '${HOME}');
    expect(substituteText('a $${NOT_A_VAR} b', {})).toEqual({ text: 'a ${NOT_A_VAR} b' });
    expect(substituteText('${PORTCULLIS_TEST_NESTED}', process.env)).toEqual({ text: '${HOME}' });
    const loaded = loadConfig(write(config('http://127.0.0.1:8080', 'grants: { header: "x-$${literal}" }\n')));
    expect(loaded.grants.header).toBe('x-${literal}');
  });

  it('keys are never substituted; a malformed reference is an error, not left as text', () => {
    env('PORTCULLIS_TEST_KEY', 'cache');
    const keyProblems = problemsOf(config('http://127.0.0.1:8080', '"${PORTCULLIS_TEST_KEY}": { allowTtl: 1s }\n'));
    expect(keyProblems[0]).toMatchObject({ key: '${PORTCULLIS_TEST_KEY}', message: 'unknown key' });
    expect(problemsOf(config('http://127.0.0.1:${PORT'))[0]!.message).toContain('without a closing "}"');
    expect(problemsOf(config('http://127.0.0.1:${1X}'))[0]!.message).toContain('"${1X}" is not a variable reference');
  });
});
