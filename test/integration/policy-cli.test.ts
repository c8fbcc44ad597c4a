// `portcullis policy test`, `portcullis policy explain` and `check`'s pdp.policyTests (SPEC
// "Policy tests", "Command line"; issue 14): the real binary, real files, exit codes 0/1/2.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configYaml, createPki, type Pki } from '../support/harness.ts';
import { runPortcullis } from '../support/run-command.ts';

const POLICY = 'deploy/pdp/embedded/policy.yaml';
const CASES = 'deploy/pdp/embedded/policy-test.yaml';
const BOT = 'spiffe://example.org/ns/prod/sa/support-bot';

const cli = (...args: string[]) => runPortcullis(args);

const dir = mkdtempSync(join(tmpdir(), 'policy-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string): string => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

const ONE = (extra: string, name = 'refund') => `cases:
  - name: ${name}
    subject: ${BOT}
    action: orders.refund
    resource: order:42
    sensitivity: high
${extra}`;

describe('portcullis policy test', () => {
  it('passes the shipped cases for the example policy: one ok line per case, exit 0', async () => {
    const run = await cli('policy', 'test', '--policy', POLICY, CASES);
    expect(run.code).toBe(0);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines.filter((l) => l.startsWith('ok    '))).toHaveLength(9);
    expect(lines.at(-1)).toBe('PASS: 9 of 9 cases');
    expect(run.stdout).toContain('ok    medium posture is not enough: deny (posture_insufficient), by tier high needs a higher posture tier');
  });

  it('a failing case: FAIL with expected vs got, the rule that decided, its line, exit 1; the others still run', async () => {
    const cases = file('failing.yaml', `${ONE('    grant: { ttl: 10m }\n    posture: medium\n    expect: allow\n', 'wrong expectation')}  - name: right one
    subject: ${BOT}
    action: orders.refund
    resource: order:42
    sensitivity: high
    grant: { ttl: 10m }
    posture: high
    expect: deny
    reason: policy_denied
`);
    const run = await cli('policy', 'test', '--policy', POLICY, cases);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`FAIL  wrong expectation (${cases}:2): expected allow, got deny (posture_insufficient), by tier high needs a higher posture tier`);
    expect(run.stderr).toContain(`FAIL  right one (${cases}:10): expected deny (policy_denied), got allow, by allow rule support-refunds`);
    expect(run.stderr).toMatch(/FAIL: 2 of 2 cases failed\n$/);
  });

  const malformed: [string, string, string][] = [
    ['an unknown key', '    grant: { ttl: 10m }\n    posture: high\n    expect: allow\n    expected: allow\n', 'cases[0] ("refund").expected: unknown key'],
    ['a bad duration', '    grant: { ttl: ten minutes }\n    expect: allow\n', 'cases[0] ("refund").grant.ttl: expected a duration like "10m", got "ten minutes"'],
    ['an unknown key in the grant', '    grant: { ttl: 10m, lifetime: 5m }\n    expect: allow\n', 'cases[0] ("refund").grant.lifetime: unknown key'],
    ['an unknown sensitivity', '    expect: allow\n', 'cases[0] ("refund").sensitivity: expected one of low, medium, high, critical, got "severe"'],
    ['an unknown expectation', '    expect: maybe\n', 'cases[0] ("refund").expect: expected one of allow, deny, got "maybe"'],
    ['an unknown reason', '    expect: deny\n    reason: nope\n', 'cases[0] ("refund").reason: expected one of grant_required'],
    ['an unknown posture tier', '    posture: ultra\n    expect: deny\n', 'cases[0] ("refund").posture: expected one of low, medium, high, got "ultra"'],
    ['a reason with expect: allow', '    expect: allow\n    reason: policy_denied\n', 'cases[0] ("refund").reason: a reason is expected only with expect: deny'],
  ];
  it.each(malformed)('a cases file with %s exits 1 naming the case, the key and the line', async (_what, extra, message) => {
    const text = ONE(extra).replace('sensitivity: high', _what === 'an unknown sensitivity' ? 'sensitivity: severe' : 'sensitivity: high');
    const cases = file('bad.yaml', text);
    const run = await cli('policy', 'test', '--policy', POLICY, cases);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(new RegExp(`^${cases.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+: `));
    expect(run.stderr).toContain(message);
  });

  it('a subject that is not a SPIFFE ID is named with its line', async () => {
    const cases = file('subject.yaml', ONE('    expect: deny\n').replace(BOT, 'support-bot'));
    const run = await cli('policy', 'test', '--policy', POLICY, cases);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`${cases}:3: cases[0] ("refund").subject: expected a SPIFFE ID like spiffe://example.org/ns/prod/sa/web, got "support-bot"`);
  });

  it('a missing cases file or no cases at all exits 1; a missing argument is usage (exit 2)', async () => {
    expect((await cli('policy', 'test', '--policy', POLICY, join(dir, 'absent.yaml'))).stderr).toContain('cannot read: ENOENT');
    const empty = await cli('policy', 'test', '--policy', POLICY, file('empty.yaml', 'cases: []\n'));
    expect([empty.code, empty.stderr.includes('cases: list at least one case')]).toEqual([1, true]);
    expect((await cli('policy', 'test', CASES)).code).toBe(2);
    expect((await cli('policy', 'test', '--policy', POLICY)).code).toBe(2);
    const help = await cli('policy', 'test', '--help');
    expect([help.code, help.stdout.split('\n')[0]]).toEqual([0, 'usage: portcullis policy test --policy FILE CASES.yaml']);
  });
});

describe('portcullis policy explain', () => {
  const explain = (...flags: string[]) => cli('policy', 'explain', '--policy', POLICY, '--subject', BOT, '--action', 'orders.refund', '--resource', 'order:42', ...flags);

  it('an allow: the decision, the allow rule that counts, every tier requirement met', async () => {
    const run = await explain('--sensitivity', 'high', '--grant-ttl', '10m', '--posture', 'high');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^decision: allow\nreason: allowed\ndecided by: the policy: allow rule support-refunds\n/);
    expect(run.stdout).toContain('support-refunds  allow  subject yes, action yes, resource yes: matches: the allow that counts');
    expect(run.stdout).toContain('tier high (checked once an allow rule matched, in this order):\n  grant required: met\n  maxGrantTtl 15m: met\n  posture at least high: met\n  intent not required\n');
  });

  const refusals: [string, string[], string, string][] = [
    ['grant_required (the proxy floor)', ['--sensitivity', 'high', '--posture', 'high'], 'grant_required', 'grant floor: sensitivity high demands a grant: NOT met'],
    ['grant_ttl_too_long (maxGrantTtl)', ['--sensitivity', 'high', '--grant-ttl', '1h', '--posture', 'high'], 'grant_ttl_too_long', 'maxGrantTtl 15m: NOT met'],
    ['posture_required', ['--sensitivity', 'high', '--grant-ttl', '10m'], 'posture_required', 'posture at least high: NOT met (none)'],
    ['posture_insufficient', ['--sensitivity', 'high', '--grant-ttl', '10m', '--posture', 'medium'], 'posture_insufficient', 'posture at least high: NOT met (medium)'],
    ['intent_required', ['--sensitivity', 'critical', '--grant-ttl', '5m', '--posture', 'high'], 'intent_required', 'intent required: NOT met'],
  ];
  it.each(refusals)('%s: the reason and the requirement not met', async (_name, flags, reason, requirement) => {
    const run = await explain(...flags);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`^decision: deny\\nreason: ${reason}\\n`));
    expect(run.stdout).toContain(requirement);
  });

  it('policy_denied: no allow rule matched, each rule says which part did not', async () => {
    const run = await cli('policy', 'explain', '--policy', POLICY, '--subject', 'spiffe://example.org/ns/prod/sa/billing', '--action', 'orders.refund', '--resource', 'order:42', '--grant-ttl', '1m');
    expect(run.stdout).toMatch(/^decision: deny\nreason: policy_denied\ndecided by: the policy: no allow rule matched\n/);
    expect(run.stdout).toContain('support-refunds  allow  subject no, action yes, resource yes: no match');
    expect(run.stdout).toContain('sensitivity  low (default; say --sensitivity as the route does)');
  });

  it('bad flags are usage errors (exit 2); a broken policy file exits 1', async () => {
    expect((await explain('--sensitivity', 'severe')).code).toBe(2);
    expect((await explain('--posture', 'ultra')).code).toBe(2);
    expect((await explain('--grant-ttl', 'soon')).code).toBe(2);
    expect((await cli('policy', 'explain', '--policy', POLICY, '--subject', 'bot', '--action', 'a', '--resource', 'r')).code).toBe(2);
    const broken = await cli('policy', 'explain', '--policy', file('broken-policy.yaml', 'rules: [{ id: x, effect: perhaps, actions: [a] }]\n'), '--subject', BOT, '--action', 'a', '--resource', 'r');
    expect([broken.code, broken.stderr.includes('effect')]).toEqual([1, true]);
  });
});

describe('portcullis check runs pdp.policyTests', () => {
  let pki: Pki;
  beforeAll(async () => {
    pki = await createPki();
    pki.write('policy.yaml', `tiers:\n  high: { grant: true, posture: high, maxGrantTtl: 15m }\nrules:\n  - { id: support-refunds, effect: allow, subjects: ["spiffe://example.org/ns/prod/sa/support-*"], actions: [orders.refund] }\n`);
  });
  afterAll(() => pki.cleanup());
  const config = (tests: string) => pki.write('portcullis.yaml', configYaml(pki, 'http://127.0.0.1:1', '').replace('pdp: { policyFile: policy.yaml }', `pdp: { policyFile: policy.yaml, policyTests: ${tests} }`));

  it('passing cases: ok; a failing case: a problem at its line, exit 1', async () => {
    pki.write('cases.yaml', ONE('    grant: { ttl: 10m }\n    posture: high\n    expect: allow\n'));
    const ok = await cli('check', '--config', config('cases.yaml'));
    expect([ok.code, ok.stdout.trim().endsWith(': ok')]).toEqual([0, true]);
    const cases = pki.write('cases.yaml', ONE('    grant: { ttl: 10m }\n    posture: medium\n    expect: allow\n'));
    const failed = await cli('check', '--config', config('cases.yaml'));
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain(`${cases}:2: cases[0] ("refund"): policy test failed: expected allow, got deny (posture_insufficient), by tier high needs a higher posture tier`);
  });

  it("the config's own grants.maxLifetime applies (policy test alone uses the default, 24h)", async () => {
    const cases = pki.write('cases.yaml', ONE('    grant: { ttl: 2h }\n    expect: deny\n    reason: grant_ttl_too_long\n').replace('sensitivity: high', 'sensitivity: low'));
    const file = pki.write('portcullis.yaml', configYaml(pki, 'http://127.0.0.1:1', 'grants: { maxLifetime: 1h }\n').replace('pdp: { policyFile: policy.yaml }', 'pdp: { policyFile: policy.yaml, policyTests: cases.yaml }'));
    expect((await cli('check', '--config', file)).code).toBe(0);
    const alone = await cli('policy', 'test', '--policy', pki.write('policy-copy.yaml', 'rules:\n  - { id: support-refunds, effect: allow, subjects: ["spiffe://example.org/ns/prod/sa/support-*"], actions: [orders.refund] }\n'), cases);
    expect(alone.code).toBe(1);
    expect(alone.stderr).toContain('expected deny (grant_ttl_too_long), got allow');
  });

  it('a malformed or missing cases file is a problem', async () => {
    pki.write('cases.yaml', ONE('    expect: perhaps\n'));
    const bad = await cli('check', '--config', config('cases.yaml'));
    expect([bad.code, bad.stderr.includes('cases[0] ("refund").expect: expected one of allow, deny, got "perhaps"')]).toEqual([1, true]);
    const missing = await cli('check', '--config', config('nowhere.yaml'));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/pdp\.policyTests: .*nowhere\.yaml: cannot read: ENOENT/);
  });
});
