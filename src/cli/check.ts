// `portcullis check --config FILE`: every problem, one line each (file, key path, line, what).
import { readFileSync } from 'node:fs';
import { ConfigError, formatProblem, lineOf, loadConfig, parseYamlFile, type ConfigProblem } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { IdentityLoadError, loadIdentityFiles } from '../identity/svid-source.ts';
import { buildPdp } from '../generation.ts';
import { issuerKeys } from '../tokens/key-set.ts';

export function checkConfig(file: string): { config?: Config; problems: string[] } {
  let config: Config;
  try {
    config = loadConfig(file);
  } catch (error) {
    if (error instanceof ConfigError) return { problems: error.problems.map(formatProblem) };
    throw error;
  }
  const problems: ConfigProblem[] = [];
  if (config.identity.source === 'files') {
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
  try {
    void buildPdp(config, 'spiffe://check/only').close?.();
  } catch (error) {
    // A policy file that cannot be read is a problem of the config key that names it.
    if (error instanceof ConfigError) problems.push(...error.problems.map((p) => (p.key === 'pdp.policyFile' ? { ...p, file, message: `${p.file}: ${p.message}` } : p)));
    else problems.push({ file, key: 'pdp', message: (error as Error).message });
  }
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
  return { config, problems: problems.map((problem) => formatProblem(withLine(file, problem))) };
}

/** Problems about files the config names are reported at the config line that names them. */
function withLine(file: string, problem: ConfigProblem): ConfigProblem {
  if (problem.line !== undefined) return problem;
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
