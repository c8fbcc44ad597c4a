// The embedded PDP (SPEC "Embedded PDP policy"): deny rules win, then the first allow rule,
// otherwise deny; an allow must also meet its sensitivity tier. Compiled once per load and
// indexed by action, so an evaluation looks only at rules that can apply.
import { z } from 'zod';
import { parseDuration } from '../config/duration.ts';
import { actionMatcher, resourceMatcher, type Matcher } from './patterns.ts';
import { compileSpiffePatterns, type SpiffePatternSet } from '../identity/spiffe-pattern.ts';
import { TIER_RANK, type TrustTier } from '../tokens/posture.ts';
import type { Pdp, PdpDeny, PdpInput, PdpResult } from './pdp.ts';
import type { DenyReason } from '../decision/denial.ts';
import type { Sensitivity } from '../routing/route-table.ts';

const durationText = z.string().refine((t) => parseDuration(t) !== undefined, { message: 'expected a duration like "30s"' });
const tier = z.strictObject({
  grant: z.boolean().default(false),
  posture: z.enum(['low', 'medium', 'high']).optional(),
  intent: z.boolean().default(false),
  maxGrantTtl: durationText.optional(),
});
const patternList = z.array(z.string().min(1, 'must not be empty')).min(1, 'list at least one pattern');
const rule = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'expected an id of letters, digits, "_", "-", ".", ":"'),
  effect: z.enum(['allow', 'deny']),
  subjects: patternList.default(['*']),
  actions: patternList,
  resources: patternList.default(['*']),
  ttl: durationText.optional(),
});

export const policySchema = z
  .strictObject({
    tiers: z.strictObject({ low: tier.optional(), medium: tier.optional(), high: tier.optional(), critical: tier.optional() }).default({}),
    rules: z.array(rule).default([]),
  })
  .superRefine((policy, ctx) => {
    const seen = new Set<string>();
    policy.rules.forEach((r, index) => {
      if (seen.has(r.id)) ctx.addIssue({ code: 'custom', path: ['rules', index, 'id'], message: `duplicate rule id "${r.id}"` });
      seen.add(r.id);
      if (r.effect === 'deny' && r.ttl) ctx.addIssue({ code: 'custom', path: ['rules', index, 'ttl'], message: `rule "${r.id}": ttl applies to allow rules only (denies use cache.denyTtl)` });
    });
  });

export type PolicyDocument = z.infer<typeof policySchema>;

interface CompiledRule {
  readonly index: number;
  readonly id: string;
  readonly allow: boolean;
  readonly subjects: SpiffePatternSet;
  readonly actions: Matcher;
  readonly resources: Matcher;
  readonly ttlMs: number | undefined;
}

interface CompiledTier {
  readonly grant: boolean;
  readonly postureRank: number;
  readonly intent: boolean;
  readonly maxGrantTtlMs: number | undefined;
}

function compileTier(t: PolicyDocument['tiers']['high']): CompiledTier | undefined {
  if (!t) return undefined;
  return { grant: t.grant, postureRank: t.posture ? TIER_RANK[t.posture as TrustTier] : 0, intent: t.intent, maxGrantTtlMs: t.maxGrantTtl ? parseDuration(t.maxGrantTtl) : undefined };
}

const ALLOW_NO_TTL = undefined;

/** A deny of the policy or of a tier; its TTL is cache.denyTtl. */
function deny(reason: DenyReason, detail: string): PdpDeny {
  return { kind: 'deny', reason, ttlMs: undefined, detail };
}

export class EmbeddedPdp implements Pdp {
  readonly kind = 'embedded';
  private readonly tiers: Readonly<Record<Sensitivity, CompiledTier | undefined>>;
  /** Rules whose actions list names this exact action; wildcards are in `wildcardRules`. */
  private readonly byAction = new Map<string, CompiledRule[]>();
  private readonly wildcardRules: CompiledRule[] = [];
  readonly ruleCount: number;

  constructor(policy: PolicyDocument) {
    this.tiers = { low: compileTier(policy.tiers.low), medium: compileTier(policy.tiers.medium), high: compileTier(policy.tiers.high), critical: compileTier(policy.tiers.critical) };
    this.ruleCount = policy.rules.length;
    policy.rules.forEach((r, index) => {
      const compiled: CompiledRule = {
        index,
        id: r.id,
        allow: r.effect === 'allow',
        subjects: compileSpiffePatterns(r.subjects),
        actions: actionMatcher(r.actions),
        resources: resourceMatcher(r.resources),
        ttlMs: r.ttl ? parseDuration(r.ttl) : undefined,
      };
      if (r.actions.some((a) => a.includes('*'))) this.wildcardRules.push(compiled);
      for (const action of r.actions) {
        if (action.includes('*')) continue;
        let list = this.byAction.get(action);
        if (!list) this.byAction.set(action, (list = []));
        if (list.at(-1) !== compiled) list.push(compiled);
      }
    });
  }

  evaluate(input: PdpInput): PdpResult {
    const exact = this.byAction.get(input.action);
    let firstAllow: CompiledRule | undefined;
    // Walk both lists in rule order: a deny anywhere wins; otherwise the first allow.
    let i = 0;
    let j = 0;
    const wild = this.wildcardRules;
    const exactLength = exact ? exact.length : 0;
    while (i < exactLength || j < wild.length) {
      const takeExact = j >= wild.length || (i < exactLength && exact![i]!.index < wild[j]!.index);
      const r = takeExact ? exact![i++]! : wild[j++]!;
      if (r.allow && firstAllow) continue;
      if (!r.actions.matches(input.action) || !r.resources.matches(input.resource) || !r.subjects.matches(input.subject)) continue;
      if (!r.allow) return deny('policy_denied', `deny rule ${r.id}`);
      firstAllow = r;
    }
    if (!firstAllow) return deny('policy_denied', 'no allow rule matched');
    const t = this.tiers[input.sensitivity];
    if (t) {
      if (t.grant && !input.grant) return deny('grant_required', `tier ${input.sensitivity} needs a grant`);
      if (t.maxGrantTtlMs !== undefined && input.grant && input.grant.expMs - input.grant.iatMs > t.maxGrantTtlMs) {
        return deny('grant_ttl_too_long', `tier ${input.sensitivity} allows grants of at most ${t.maxGrantTtlMs} ms`);
      }
      if (t.postureRank > 0) {
        if (!input.posture) return deny('posture_required', `tier ${input.sensitivity} needs a posture assertion`);
        const rank = input.posture.tier ? TIER_RANK[input.posture.tier] : 0;
        if (rank < t.postureRank) return deny('posture_insufficient', `tier ${input.sensitivity} needs a higher posture tier`);
      }
      if (t.intent && input.intent === undefined) return deny('intent_required', `tier ${input.sensitivity} needs an intent`);
    }
    return { kind: 'allow', ttlMs: firstAllow.ttlMs ?? ALLOW_NO_TTL, detail: `allow rule ${firstAllow.id}` };
  }
}
