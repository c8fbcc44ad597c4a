// A folder of config files for the key-by-key tests: a minimal valid config plus the keys under
// test, loaded as `portcullis run` would, and the problems a bad one is refused with, each as
// "key: message" (SPEC: every config error names its key). Removed after the file's tests.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config/load.ts';
import type { Config } from '../../../src/config/schema.ts';

const MINIMAL = `identity:
  certFile: svid.pem
  keyFile: svid_key.pem
  bundleFile: bundle.pem
  trustDomains: [example.org]
  allow: ["spiffe://example.org/ns/prod/**"]
upstream: { url: "http://127.0.0.1:8080" }
pdp: { policyFile: policy.yaml }
`;

export function configFiles(name: string): { dir: string; load: (extra: string) => Config; problems: (extra: string) => string[] } {
  const dir = mkdtempSync(join(tmpdir(), `portcullis-${name}-`));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;
  const load = (extra: string): Config => {
    const file = join(dir, `c${++n}.yaml`);
    writeFileSync(file, MINIMAL + extra);
    return loadConfig(file);
  };
  const problems = (extra: string): string[] => {
    try {
      load(extra);
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as ConfigError).problems.map((p) => `${p.key}: ${p.message}`);
    }
    throw new Error('expected a ConfigError');
  };
  return { dir, load, problems };
}
