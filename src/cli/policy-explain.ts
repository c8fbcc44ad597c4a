// `portcullis policy explain --policy FILE --subject ID --action A --resource R [--sensitivity S]
// [--grant-ttl D] [--posture TIER] [--intent I]` (SPEC "Command line", like `opa eval --explain`):
// one request decided by decideOffline (the proxy's grant floor, token checks and embedded PDP),
// printed with the reason, every rule's reading of it, and the tier's requirements, met or not.
import type { OfflineCase, OfflineDecision, OfflineRules } from '../decision/offline-decision.ts';
import { decideOffline } from '../decision/offline-decision.ts';
import type { EmbeddedPdp } from '../pdp/embedded-policy.ts';
import { TIER_RANK } from '../tokens/posture.ts';
import { formatDuration } from '../config/reference.ts';

const mark = (ok: boolean): string => (ok ? 'yes' : 'no');

/** The explanation as text: decision and reason first, then why. */
export function formatExplanation(c: OfflineCase, d: OfflineDecision, rules: OfflineRules, sensitivityDefaulted: boolean): string {
  const out: string[] = [];
  out.push(`decision: ${d.decision}`);
  out.push(`reason: ${d.reason}`);
  out.push(`decided by: ${d.stage === 'policy' ? 'the policy' : d.stage === 'floor' ? "the proxy's grant floor" : 'the token checks'}: ${d.detail}`);
  out.push('');
  out.push('request:');
  out.push(`  subject      ${c.subject}`);
  out.push(`  action       ${c.action}`);
  out.push(`  resource     ${c.resource}`);
  out.push(`  sensitivity  ${c.sensitivity}${sensitivityDefaulted ? ' (default; say --sensitivity as the route does)' : ''}`);
  out.push(`  grant        ${c.grant ? `verified, lives ${formatDuration(c.grant.ttlMs)}, scope ${c.grant.scope ?? c.action}` : 'none'}`);
  out.push(`  posture      ${c.posture ? `tier ${c.posture}` : 'none'}`);
  out.push(`  intent       ${c.intent ?? 'none'}`);
  out.push('');
  // Step 2 and 3 of the proxy: what refuses before the policy is asked.
  out.push('proxy checks (before the policy):');
  const floor = c.sensitivity === 'high' || c.sensitivity === 'critical';
  out.push(`  grant floor: sensitivity ${c.sensitivity} ${floor ? `demands a grant: ${c.grant ? 'met' : 'NOT met'}` : 'demands no grant of its own'}`);
  if (c.grant) out.push(`  grants.maxLifetime ${formatDuration(rules.grantMaxLifetimeMs)}: ${c.grant.ttlMs <= rules.grantMaxLifetimeMs ? 'met' : 'NOT met'}`);
  if (d.stage !== 'policy') {
    out.push('');
    out.push(`the policy was not asked: the request is refused with ${d.reason} first`);
    return `${out.join('\n')}\n`;
  }
  const e = d.explanation!;
  out.push('');
  out.push('rules (deny rules win; otherwise the first allow; otherwise deny):');
  if (e.rules.length === 0) out.push('  (none)');
  let firstAllow = true;
  const width = Math.max(...e.rules.map((r) => r.id.length), 4);
  for (const r of e.rules) {
    const matches = r.subject && r.action && r.resource;
    let verdict = matches ? 'matches' : 'no match';
    if (matches && r.effect === 'deny') verdict = 'matches: DENIES';
    else if (matches && firstAllow) {
      verdict = 'matches: the allow that counts';
      firstAllow = false;
    }
    out.push(`  ${r.id.padEnd(width)}  ${r.effect.padEnd(5)}  subject ${mark(r.subject)}, action ${mark(r.action)}, resource ${mark(r.resource)}: ${verdict}`);
  }
  out.push('');
  if (!e.tier) out.push(`tier ${c.sensitivity}: the policy names none (an allow rule is enough)`);
  else {
    const t = e.tier;
    const lines: string[] = [];
    lines.push(`grant ${t.grant ? `required: ${c.grant ? 'met' : 'NOT met'}` : 'not required'}`);
    if (t.maxGrantTtlMs !== undefined) lines.push(`maxGrantTtl ${formatDuration(t.maxGrantTtlMs)}: ${!c.grant ? 'no grant to measure' : c.grant.ttlMs <= t.maxGrantTtlMs ? 'met' : 'NOT met'}`);
    lines.push(t.posture ? `posture at least ${t.posture}: ${!c.posture ? 'NOT met (none)' : TIER_RANK[c.posture] >= TIER_RANK[t.posture] ? 'met' : `NOT met (${c.posture})`}` : 'posture not required');
    lines.push(`intent ${t.intent ? `required: ${c.intent !== undefined ? 'met' : 'NOT met'}` : 'not required'}`);
    out.push(`tier ${c.sensitivity} (checked once an allow rule matched, in this order):`);
    for (const line of lines) out.push(`  ${line}`);
  }
  return `${out.join('\n')}\n`;
}

export function policyExplain(pdp: EmbeddedPdp, c: OfflineCase, rules: OfflineRules, sensitivityDefaulted: boolean): { output: string; decision: OfflineDecision } {
  const decision = decideOffline(pdp, c, rules);
  return { output: formatExplanation(c, decision, rules, sensitivityDefaulted), decision };
}
