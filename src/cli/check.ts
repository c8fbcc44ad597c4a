// `portcullis check --config FILE`: every problem, one line each (file, key path, line, what),
// and a warning per privileged route whose sensitivity tier demands no grant (SPEC "The
// decision" step 2).
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ConfigError, formatProblem, lineOf, loadConfig, parseYamlFile, type ConfigProblem } from '../config/load.ts';
import type { Config, RouteBody } from '../config/schema.ts';
import { IdentityLoadError, loadIdentityFiles } from '../identity/svid-source.ts';
import { buildPdp } from '../generation.ts';
import { issuerKeys } from '../tokens/key-set.ts';
import { policySchema, type PolicyDocument } from '../pdp/embedded-policy.ts';
import { loadPolicy } from '../config/load-policy.ts';
import { loadCases, runCases } from './policy-test.ts';

export interface CheckOptions {
  /**
   * Schema, cross-field rules and the embedded policy file only: the SVID, key, bundle and JWKS
   * files the config names are not read (CI checks a ConfigMap whose files live elsewhere). The
   * policy file is read even so: it is config, shipped beside the config file.
   */
  readonly offline?: boolean;
}

export interface CheckResult {
  /** The loaded config, when the schema accepted it (problems may still name its files). */
  readonly config?: Config;
  readonly problems: readonly ConfigProblem[];
  readonly warnings: readonly ConfigProblem[];
}

export function checkConfig(file: string, options: CheckOptions = {}): CheckResult {
  let config: Config;
  try {
    config = loadConfig(file);
  } catch (error) {
    if (error instanceof ConfigError) return { problems: error.problems, warnings: [] };
    throw error;
  }
  const problems: ConfigProblem[] = [];
  if (!options.offline && config.identity.source === 'files') {
    try {
      loadIdentityFiles({
        certFile: config.identity.certFile!,
        keyFile: config.identity.keyFile!,
        bundleFile: config.identity.bundleFile!,
        trustDomains: config.identity.trustDomains,
        bundles: config.identity.bundles,
      });
    } catch (error) {
      if (!(error instanceof IdentityLoadError)) throw error;
      problems.push({ file, key: error.message.split(' ')[0] ?? 'identity', message: error.message.slice(error.message.indexOf(' ') + 1) });
    }
  }
  let pdpBuilt = false;
  try {
    void buildPdp(config, 'spiffe://check/only').close?.();
    pdpBuilt = true;
  } catch (error) {
    // A policy file that cannot be read is a problem of the config key that names it.
    if (error instanceof ConfigError) problems.push(...error.problems.map((p) => (p.key === 'pdp.policyFile' ? { ...p, file, message: `${p.file}: ${p.message}` } : p)));
    else problems.push({ file, key: 'pdp', message: (error as Error).message });
  }
  if (!options.offline) {
    for (const section of ['grants', 'posture'] as const) {
      config[section].issuers.forEach((issuer, index) => {
        try {
          issuerKeys(issuer, 1000);
        } catch (error) {
          const source = issuer.jwksFile ? 'jwksFile' : issuer.publicKeyFile ? 'publicKeyFile' : 'jwksUrl';
          problems.push({ file, key: `${section}.issuers[${index}].${source}`, message: (error as Error).message });
        }
      });
    }
  }
  if (pdpBuilt && config.pdp.kind === 'embedded' && config.pdp.policyTests !== undefined) problems.push(...policyTestProblems(config, file));
  // Warnings need the policy's tiers; a policy that failed to load is already a problem.
  const warnings = pdpBuilt ? grantFloorWarnings(config, file) : [];
  return { config, problems: problems.map((problem) => withLine(file, problem)), warnings: warnings.map((w) => withLine(file, w)) };
}

/**
 * pdp.policyTests (SPEC "Policy tests"): the cases file, relative to the config file, run against
 * the policy with this config's grants.maxLifetime and posture.maxAge; a malformed file or a
 * failing case is a problem at the case's line.
 */
function policyTestProblems(config: Config, file: string): ConfigProblem[] {
  const casesFile = resolve(dirname(resolve(file)), config.pdp.policyTests!);
  try {
    const results = runCases(loadPolicy(config.pdp.policyFile!), loadCases(casesFile), { grantMaxLifetimeMs: config.grants.maxLifetime, postureMaxAgeMs: config.posture.maxAge });
    return results.flatMap(({ case: c, got, ok }, index) => {
      if (ok) return [];
      const want = c.reason ? `${c.expect} (${c.reason})` : c.expect;
      const have = got.decision === 'allow' ? 'allow' : `deny (${got.reason})`;
      return [{ file: casesFile, key: `cases[${index}] ("${c.name}")`, line: c.line, message: `policy test failed: expected ${want}, got ${have}, by ${got.detail}` }];
    });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    // A file that cannot be read is a problem of the config key that names it.
    return error.problems.map((p) => (p.file === casesFile && p.key === '' && p.line === undefined ? { file, key: 'pdp.policyTests', message: `${casesFile}: ${p.message}` } : p));
  }
}

/**
 * SPEC "The decision" step 2: `high` and `critical` always demand a grant (the runtime floor);
 * below that only the embedded policy's tier can, and a remote PDP's rules are not ours to read.
 */
function grantFloorWarnings(config: Config, file: string): ConfigProblem[] {
  const tiers = config.pdp.kind === 'embedded' ? policyTiers(config.pdp.policyFile!) : undefined;
  const warnings: ConfigProblem[] = [];
  const consider = (key: string, name: string, route: RouteBody) => {
    if (!route.privileged || route.sensitivity === 'high' || route.sensitivity === 'critical') return;
    // The schema requires a privileged route's sensitivity; unprivileged ones returned above.
    const s = route.sensitivity ?? 'low';
    if (tiers === undefined) {
      warnings.push({ file, key: `${key}.sensitivity`, message: `privileged route "${name}" (sensitivity ${s}) has no grant floor: only the remote PDP decides (sensitivity high or critical always demands a grant)` });
    } else if (tiers[s]?.grant !== true) {
      warnings.push({ file, key: `${key}.sensitivity`, message: `privileged route "${name}" (sensitivity ${s}) demands no grant: the policy's tiers.${s}.grant is not true, so any peer an allow rule names passes without one` });
    }
  };
  config.routes.forEach((route, index) => consider(`routes[${index}]`, route.name, route));
  if (config.defaultRoute !== 'deny') consider('defaultRoute', 'default', config.defaultRoute);
  return warnings;
}

/** The tiers of a policy file that already loaded (buildPdp validated it). */
function policyTiers(policyFile: string): PolicyDocument['tiers'] {
  const parsed = parseYamlFile(policyFile, readFileSync(policyFile, 'utf8'));
  if ('problems' in parsed) return {};
  const result = policySchema.safeParse(parsed.value ?? {});
  return result.success ? result.data.tiers : {};
}

/** Problems about files the config names are reported at the config line that names them. */
function withLine(file: string, problem: ConfigProblem): ConfigProblem {
  if (problem.line !== undefined || problem.file !== file) return problem;
  let parsed;
  try {
    parsed = parseYamlFile(file, readFileSync(file, 'utf8'));
  } catch {
    return problem;
  }
  if ('problems' in parsed) return problem;
  const path = problem.key.split(/\.|\[(\d+)\]/).filter((part) => part !== undefined && part !== '').map((part) => (/^\d+$/.test(part) ? Number(part) : part));
  return { ...problem, file, line: lineOf(parsed.doc, parsed.lines, path) };
}

/** `check --format text`: problems on stderr as before, warnings and the verdict on stdout. */
export function checkText(file: string, result: CheckResult): { stdout: string; stderr: string } {
  const warnings = result.warnings.map((w) => `warning: ${formatProblem(w)}\n`).join('');
  if (result.problems.length > 0) return { stdout: '', stderr: result.problems.map((p) => `${formatProblem(p)}\n`).join('') + warnings };
  return { stdout: `${warnings}${file}: ok\n`, stderr: '' };
}

/** `check --format json`: one document on stdout, for CI. */
export function checkJson(file: string, result: CheckResult): string {
  const item = (p: ConfigProblem) => ({ file: p.file, line: p.line ?? null, key: p.key, message: p.message });
  return `${JSON.stringify({ file, ok: result.problems.length === 0, problems: result.problems.map(item), warnings: result.warnings.map(item) }, null, 2)}\n`;
}
