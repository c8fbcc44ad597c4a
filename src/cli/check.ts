// `portcullis check --config FILE`: every problem, one line each (file, key path, line, what).
import { ConfigError, formatProblem, loadConfig, type ConfigProblem } from '../config/load.ts';
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
    if (error instanceof ConfigError) problems.push(...error.problems);
    else problems.push({ file, key: 'pdp', message: (error as Error).message });
  }
  for (const section of ['grants', 'posture'] as const) {
    config[section].issuers.forEach((issuer, index) => {
      try {
        issuerKeys(issuer, 1000);
      } catch (error) {
        problems.push({ file, key: `${section}.issuers[${index}]`, message: (error as Error).message });
      }
    });
  }
  return { config, problems: problems.map(formatProblem) };
}
