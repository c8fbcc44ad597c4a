// `portcullis check --config FILE`: every problem, one line each (file, key path, line, what).
import { ConfigError, formatProblem, loadConfig, type ConfigProblem } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { IdentityLoadError, loadIdentityFiles } from '../identity/svid-source.ts';

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
  return { config, problems: problems.map(formatProblem) };
}
