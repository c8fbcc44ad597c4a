// `portcullis policy test --policy FILE CASES.yaml` (SPEC "Policy tests", like `opa test`): each
// case is decided by decideOffline, the proxy's own grant floor, token checks and embedded PDP,
// and printed as `ok` or `FAIL` with expected vs got and the rule that decided. A malformed cases
// file is a list of problems naming the case, the key and the line; nothing runs then.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError, issueMessage, keyPath, lineOf, parseYamlFile, type ConfigProblem } from '../config/load.ts';
import { loadPolicy } from '../config/load-policy.ts';
import { parseDuration } from '../config/duration.ts';
import { parseSpiffeId } from '../identity/spiffe-id.ts';
import { decideOffline, type OfflineCase, type OfflineDecision, type OfflineRules } from '../decision/offline-decision.ts';
import type { DenyReason } from '../decision/denial.ts';
import type { EmbeddedPdp } from '../pdp/embedded-policy.ts';

/** Every SPEC reason a decision can give (the list of denial.ts, which has no runtime list). */
export const DECISION_REASONS = [
  'grant_required', 'grant_invalid', 'grant_expired', 'grant_revoked', 'grant_subject_mismatch', 'grant_scope', 'grant_ttl_too_long',
  'posture_required', 'posture_invalid', 'posture_stale', 'posture_revoked', 'posture_insufficient',
  'intent_required', 'intent_mismatch', 'policy_denied', 'pdp_unavailable', 'revocation_unavailable',
] as const satisfies readonly DenyReason[];

/** The config's defaults (grants.maxLifetime, posture.maxAge) when no config says otherwise. */
export const DEFAULT_RULES: OfflineRules = { grantMaxLifetimeMs: 24 * 3_600_000, postureMaxAgeMs: 300_000 };

const text = z.string({ error: (issue) => (issue.input === undefined ? 'required' : 'expected a string') }).min(1, 'must not be empty');
const ttl = z.string({ error: 'expected a duration like "10m"' }).transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === undefined || ms <= 0) {
    ctx.addIssue({ code: 'custom', message: `expected a duration like "10m", got ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return ms;
});
const spiffeId = z.string({ error: 'expected a SPIFFE ID like spiffe://example.org/ns/prod/sa/web' }).superRefine((value, ctx) => {
  try {
    parseSpiffeId(value);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: `expected a SPIFFE ID like spiffe://example.org/ns/prod/sa/web, got ${JSON.stringify(value)} (${(error as Error).message})` });
  }
});
const oneOf = <const T extends readonly [string, ...string[]]>(values: T) => z.enum(values as unknown as { [K in T[number]]: K }, { error: (issue) => (issue.input === undefined ? 'required' : `expected one of ${values.join(', ')}, got ${JSON.stringify(issue.input)}`) });

const caseSchema = z
  .strictObject({
    name: text,
    subject: spiffeId,
    action: text,
    resource: text,
    sensitivity: oneOf(['low', 'medium', 'high', 'critical']),
    grant: z.strictObject({ ttl, scope: text.optional(), resources: z.array(text).optional(), intent: text.optional() }).optional(),
    posture: oneOf(['low', 'medium', 'high']).optional(),
    intent: text.optional(),
    expect: oneOf(['allow', 'deny']),
    reason: oneOf(DECISION_REASONS).optional(),
  })
  .superRefine((c, ctx) => {
    if (c.expect === 'allow' && c.reason !== undefined) ctx.addIssue({ code: 'custom', path: ['reason'], message: 'a reason is expected only with expect: deny' });
  });

const casesSchema = z.strictObject({ cases: z.array(caseSchema).min(1, 'list at least one case') });

export interface PolicyCase extends OfflineCase {
  readonly name: string;
  readonly expect: 'allow' | 'deny';
  readonly reason: DenyReason | undefined;
  /** Where the case starts in the file. */
  readonly line: number | undefined;
}

/** Reads and validates a cases file; throws ConfigError naming case, key and line for each problem. */
export function loadCases(file: string): PolicyCase[] {
  let source: string;
  try {
    source = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError([{ file, key: '', message: `cannot read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` }]);
  }
  const parsed = parseYamlFile(file, source);
  if ('problems' in parsed) throw new ConfigError(parsed.problems);
  const result = casesSchema.safeParse(parsed.value ?? {}, { reportInput: true });
  const raw = (parsed.value as { cases?: { name?: unknown }[] } | null)?.cases;
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((issue): ConfigProblem => {
        const path = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0] ?? ''] : issue.path;
        let key = keyPath(path);
        // Name the case as a person does: by its name (SPEC: "naming the case and key").
        if (path[0] === 'cases' && typeof path[1] === 'number') {
          const name = Array.isArray(raw) ? raw[path[1]]?.name : undefined;
          if (typeof name === 'string') key = key.replace(`cases[${path[1]}]`, `cases[${path[1]}] ("${name}")`);
        }
        return { file, key, line: lineOf(parsed.doc, parsed.lines, path), message: issueMessage(issue) };
      }),
    );
  }
  return result.data.cases.map((c, index) => ({
    name: c.name,
    subject: c.subject,
    action: c.action,
    resource: c.resource,
    sensitivity: c.sensitivity,
    grant: c.grant ? { ttlMs: c.grant.ttl, scope: c.grant.scope, resources: c.grant.resources, intent: c.grant.intent } : undefined,
    posture: c.posture,
    intent: c.intent,
    expect: c.expect,
    reason: c.reason,
    line: lineOf(parsed.doc, parsed.lines, ['cases', index]),
  }));
}

export interface CaseResult {
  readonly case: PolicyCase;
  readonly got: OfflineDecision;
  readonly ok: boolean;
}

export function runCases(pdp: EmbeddedPdp, cases: readonly PolicyCase[], rules: OfflineRules = DEFAULT_RULES, now = Date.now()): CaseResult[] {
  return cases.map((c) => {
    const got = decideOffline(pdp, c, rules, now);
    const ok = got.decision === c.expect && (c.reason === undefined || got.reason === c.reason);
    return { case: c, got, ok };
  });
}

const expected = (c: PolicyCase): string => (c.reason ? `${c.expect} (${c.reason})` : c.expect);
const gotText = (d: OfflineDecision): string => (d.decision === 'allow' ? 'allow' : `deny (${d.reason})`);

/** One line per case, then a summary line. */
export function formatResults(casesFile: string, results: readonly CaseResult[]): string {
  const lines = results.map(({ case: c, got, ok }) => {
    const where = c.line ? `${casesFile}:${c.line}` : casesFile;
    return ok
      ? `ok    ${c.name}: ${gotText(got)}, by ${got.detail}`
      : `FAIL  ${c.name} (${where}): expected ${expected(c)}, got ${gotText(got)}, by ${got.detail}`;
  });
  const failed = results.filter((r) => !r.ok).length;
  lines.push(failed === 0 ? `PASS: ${results.length} of ${results.length} cases` : `FAIL: ${failed} of ${results.length} cases failed`);
  return `${lines.join('\n')}\n`;
}

export interface PolicyTestRun {
  readonly output: string;
  /** 0 every case passed, 1 a case failed or a file was malformed. */
  readonly code: 0 | 1;
}

/** The command: load both files (problems exit 1), run the cases, print. */
export function policyTest(policyFile: string, casesFile: string, rules: OfflineRules = DEFAULT_RULES): PolicyTestRun {
  let pdp: EmbeddedPdp;
  let cases: PolicyCase[];
  try {
    pdp = loadPolicy(policyFile);
    cases = loadCases(casesFile);
  } catch (error) {
    if (error instanceof ConfigError) return { output: `${error.message}\n`, code: 1 };
    throw error;
  }
  const results = runCases(pdp, cases, rules);
  return { output: formatResults(casesFile, results), code: results.every((r) => r.ok) ? 0 : 1 };
}
