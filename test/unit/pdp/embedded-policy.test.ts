import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EmbeddedPdp, policySchema } from '../../../src/pdp/embedded-policy.ts';
import { loadPolicy } from '../../../src/config/load-policy.ts';
import { ConfigError } from '../../../src/config/load.ts';
import { actionMatcher, resourceMatcher } from '../../../src/pdp/patterns.ts';
import type { PdpInput, PdpResult } from '../../../src/pdp/pdp.ts';
import type { Grant } from '../../../src/tokens/grant.ts';
import type { PostureAssertion } from '../../../src/tokens/posture.ts';

const SUPPORT = 'spiffe://example.org/ns/prod/sa/support-bot';

function pdp(doc: unknown): EmbeddedPdp {
  return new EmbeddedPdp(policySchema.parse(doc));
}

function grant(ttlMs: number): Grant {
  const iatMs = Date.now();
  return { jti: 'j', iss: 'i', sub: SUPPORT, iatMs, expMs: iatMs + ttlMs, scope: actionMatcher(['*']), resources: undefined, intent: undefined, certThumbprint: undefined, approver: undefined, justification: undefined, claims: {} };
}

function posture(tier: 'low' | 'medium' | 'high'): PostureAssertion {
  return { sub: SUPPORT, iatMs: Date.now(), expMs: Date.now() + 60_000, tier, posture: { trust: tier } };
}

/** What an answer comes to: `allow`, or the deny's SPEC reason. */
function outcome(result: PdpResult): string {
  return result.kind === 'deny' ? result.reason : result.kind;
}

function input(overrides: Partial<PdpInput> = {}): PdpInput {
  return { subject: SUPPORT, posture: undefined, action: 'orders.refund', method: 'POST', resource: 'order:42', route: 'refund', sensitivity: 'low', grant: undefined, intent: undefined, requestId: 'r', nowMs: Date.now(), ...overrides };
}

const RULES = {
  tiers: {
    high: { grant: true, posture: 'high', maxGrantTtl: '15m' },
    critical: { grant: true, posture: 'high', intent: true, maxGrantTtl: '5m' },
  },
  rules: [
    { id: 'support-refunds', effect: 'allow', subjects: ['spiffe://example.org/ns/prod/sa/support-*'], actions: ['orders.refund'], resources: ['order:*'], ttl: '30s' },
    { id: 'no-refunds-on-vip', effect: 'deny', subjects: ['*'], actions: ['orders.*'], resources: ['order:vip-*'] },
    { id: 'readers', effect: 'allow', subjects: ['spiffe://example.org/**'], actions: ['orders.read'] },
  ],
};

describe('embedded PDP', () => {
  it('allows on the first matching allow rule and reports its ttl', () => {
    expect(pdp(RULES).evaluate(input())).toEqual({ kind: 'allow', detail: 'allow rule support-refunds', ttlMs: 30_000 });
  });

  it('lets a deny rule win over an earlier allow', () => {
    const result = pdp(RULES).evaluate(input({ resource: 'order:vip-1' }));
    expect(result).toMatchObject({ kind: 'deny', reason: 'policy_denied', detail: 'deny rule no-refunds-on-vip' });
  });

  it('denies when no allow rule matches subject, action or resource', () => {
    const p = pdp(RULES);
    expect(outcome(p.evaluate(input({ subject: 'spiffe://example.org/ns/prod/sa/billing' })))).toBe('policy_denied');
    expect(outcome(p.evaluate(input({ action: 'orders.delete' })))).toBe('policy_denied');
    expect(outcome(p.evaluate(input({ resource: 'invoice:1' })))).toBe('policy_denied');
    expect(pdp({ rules: [] }).evaluate(input()).kind).toBe('deny');
  });

  // The sensitivity tier on top of an allow rule, in SPEC reason order: one row per outcome.
  const TIER_ROWS: [string, string, Partial<PdpInput>][] = [
    ['high, no grant', 'grant_required', { sensitivity: 'high' }],
    ['high, a grant longer than maxGrantTtl', 'grant_ttl_too_long', { sensitivity: 'high', grant: grant(16 * 60_000) }],
    ['high, a grant of exactly maxGrantTtl, no posture', 'posture_required', { sensitivity: 'high', grant: grant(15 * 60_000) }],
    ['high, posture below the tier', 'posture_insufficient', { sensitivity: 'high', grant: grant(60_000), posture: posture('medium') }],
    ['high, grant and high posture', 'allow', { sensitivity: 'high', grant: grant(60_000), posture: posture('high') }],
    ['critical, no intent', 'intent_required', { sensitivity: 'critical', grant: grant(60_000), posture: posture('high') }],
    ['critical, everything', 'allow', { sensitivity: 'critical', grant: grant(60_000), posture: posture('high'), intent: 'refund' }],
    ['critical, a grant longer than its maxGrantTtl', 'grant_ttl_too_long', { sensitivity: 'critical', grant: grant(6 * 60_000), posture: posture('high'), intent: 'refund' }],
    ['low, no tier configured', 'allow', { sensitivity: 'low' }],
  ];
  it.each(TIER_ROWS)('applies the sensitivity tier on top of an allow rule: %s → %s', (_name, expected, overrides) => {
    expect(outcome(pdp(RULES).evaluate(input(overrides)))).toBe(expected);
  });

  it('does not apply a tier to a deny', () => {
    expect(outcome(pdp(RULES).evaluate(input({ sensitivity: 'high', resource: 'order:vip-2' })))).toBe('policy_denied');
  });

  it('evaluates 1,000 rules through the action index with the same answers as a full scan', () => {
    const rules = Array.from({ length: 1000 }, (_, i) => ({ id: `r${i}`, effect: i % 97 === 0 ? 'deny' : 'allow', subjects: [`spiffe://example.org/ns/n${i % 10}/**`], actions: [i % 50 === 0 ? `svc${i % 7}.*` : `svc${i % 7}.op${i}`], resources: ['*'] }));
    const indexed = pdp({ rules });
    for (let i = 0; i < 1000; i += 7) {
      const action = `svc${i % 7}.op${i}`;
      const subject = `spiffe://example.org/ns/n${i % 10}/sa/x`;
      // Reference: deny wins, else first allow, by a plain scan.
      const matching = rules.filter((r) => actionMatcher(r.actions).matches(action) && new RegExp(`^${r.subjects[0]!.replace('/**', '')}(/.*)?$`).test(subject));
      const deny = matching.find((r) => r.effect === 'deny');
      const allow = matching.find((r) => r.effect === 'allow');
      const result = indexed.evaluate(input({ action, subject }));
      if (deny) expect(result.detail).toBe(`deny rule ${deny.id}`);
      else if (allow) expect(result.detail).toBe(`allow rule ${allow.id}`);
      else expect(result.kind).toBe('deny');
    }
  });
});

describe('patterns', () => {
  it('matches one dot segment for `orders.*` and everything for `*`', () => {
    const m = actionMatcher(['orders.*']);
    expect(m.matches('orders.refund')).toBe(true);
    expect(m.matches('orders.refund.partial')).toBe(false);
    expect(m.matches('orders.')).toBe(false);
    expect(m.matches('billing.refund')).toBe(false);
    expect(actionMatcher(['*']).matches('anything.at.all')).toBe(true);
  });

  it('matches within one colon part for `order:*`', () => {
    const m = resourceMatcher(['order:*']);
    expect(m.matches('order:42')).toBe(true);
    expect(m.matches('order:42:items')).toBe(false);
    expect(m.matches('invoice:42')).toBe(false);
    expect(resourceMatcher(['order:42']).matches('order:42')).toBe(true);
    expect(resourceMatcher(['order:4']).matches('order:42')).toBe(false);
  });
});

describe('loading a policy file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-policy-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, text: string) => {
    const file = join(dir, name);
    writeFileSync(file, text);
    return file;
  };

  it('loads the SPEC example', () => {
    const file = write('ok.yaml', `tiers:\n  high: { grant: true, posture: high, maxGrantTtl: 15m }\nrules:\n  - id: support-refunds\n    effect: allow\n    subjects: ["spiffe://example.org/ns/prod/sa/support-*"]\n    actions: ["orders.refund"]\n    resources: ["order:*"]\n    ttl: 30s\n`);
    expect(loadPolicy(file).ruleCount).toBe(1);
  });

  it('names the rule id, key and line of each problem', () => {
    const file = write('bad.yaml', `rules:\n  - id: ok-rule\n    effect: allow\n    actions: [a.b]\n  - id: broken\n    effect: maybe\n    actions: [a.b]\n    ttl: soon\n    color: red\n  - id: ok-rule\n    effect: deny\n    actions: [x]\n`);
    let problems: string[] = [];
    try {
      loadPolicy(file);
    } catch (error) {
      problems = (error as ConfigError).problems.map((p) => `${p.line}: ${p.key}: ${p.message}`);
    }
    expect(problems).toContainEqual(expect.stringMatching(/^6: rules\[1\] \(id "broken"\)\.effect: /));
    expect(problems).toContainEqual('8: rules[1] (id "broken").ttl: expected a duration like "30s"');
    expect(problems).toContainEqual('9: rules[1] (id "broken").color: unknown key');
  });

  it('refuses duplicate ids and a deny rule with a ttl', () => {
    const file = write('dup.yaml', `rules:\n  - { id: a, effect: allow, actions: [x] }\n  - { id: a, effect: deny, actions: [y], ttl: 5s }\n`);
    expect(() => loadPolicy(file)).toThrow(/duplicate rule id "a"[\s\S]*ttl applies to allow rules only/);
  });

  it('refuses a missing file naming pdp.policyFile', () => {
    expect(() => loadPolicy(join(dir, 'nope.yaml'))).toThrow(/pdp\.policyFile: cannot read: ENOENT/);
  });
});
