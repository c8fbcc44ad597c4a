// Loading the embedded PDP's policy file: YAML, validated, problems naming rule ids and keys.
import { readFileSync } from 'node:fs';
import { ConfigError, issueMessage, keyPath, lineOf, parseYamlFile, type ConfigProblem } from './load.ts';
import { EmbeddedPdp, policySchema } from '../pdp/embedded-policy.ts';

export function loadPolicy(file: string): EmbeddedPdp {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError([{ file, key: 'pdp.policyFile', message: `cannot read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` }]);
  }
  const parsed = parseYamlFile(file, text);
  if ('problems' in parsed) throw new ConfigError(parsed.problems);
  const result = policySchema.safeParse(parsed.value ?? {});
  if (!result.success) {
    const rules = (parsed.value as { rules?: { id?: unknown }[] } | null)?.rules;
    throw new ConfigError(
      result.error.issues.map((issue): ConfigProblem => {
        const path = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0] ?? ''] : issue.path;
        let key = keyPath(path);
        if (path[0] === 'rules' && typeof path[1] === 'number') {
          const id = rules?.[path[1]]?.id;
          if (typeof id === 'string') key = key.replace(`rules[${path[1]}]`, `rules[${path[1]}] (id "${id}")`);
        }
        const message = issueMessage(issue);
        return { file, key, line: lineOf(parsed.doc, parsed.lines, path), message };
      }),
    );
  }
  return new EmbeddedPdp(result.data);
}
