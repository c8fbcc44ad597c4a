// `${NAME}` in config values (for Kubernetes: a Secret's or the Downward API's value in a
// ConfigMap's config). Values only, never keys; an unset variable is a config error naming the
// key and the variable, never a silent empty string; `$${` is a literal `${`.

export interface EnvProblem {
  readonly path: readonly PropertyKey[];
  readonly message: string;
}

const REFERENCE = /\$\$\{|\$\{([^}]*)\}?/g;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** One string value: the text with every `${NAME}` replaced, or what is wrong with it. */
export function substituteText(text: string, env: NodeJS.ProcessEnv): { text: string } | { message: string } {
  if (!text.includes('${')) return { text };
  let problem: string | undefined;
  const out = text.replace(REFERENCE, (match, name: string | undefined) => {
    if (match === '$${') return '${';
    if (problem !== undefined) return match;
    if (!match.endsWith('}')) problem = `"\${" without a closing "}" (write "$\${" for a literal "\${")`;
    else if (!NAME.test(name ?? '')) problem = `"${match}" is not a variable reference: expected \${NAME} with letters, digits and "_" (write "$\${" for a literal "\${")`;
    else if (env[name!] === undefined) problem = `environment variable ${name} is not set (referenced as ${match})`;
    else return env[name!]!;
    return match;
  });
  return problem === undefined ? { text: out } : { message: problem };
}

/** Walks a parsed config: strings in mappings and lists are substituted, keys are left alone. */
export function substituteEnv(value: unknown, env: NodeJS.ProcessEnv): { value: unknown } | { problems: EnvProblem[] } {
  const problems: EnvProblem[] = [];
  const walk = (node: unknown, path: PropertyKey[]): unknown => {
    if (typeof node === 'string') {
      const result = substituteText(node, env);
      if ('message' in result) {
        problems.push({ path, message: result.message });
        return node;
      }
      return result.text;
    }
    if (Array.isArray(node)) return node.map((item, index) => walk(item, [...path, index]));
    if (node !== null && typeof node === 'object') {
      return Object.fromEntries(Object.entries(node as Record<string, unknown>).map(([key, item]) => [key, walk(item, [...path, key])]));
    }
    return node;
  };
  const out = walk(value, []);
  return problems.length > 0 ? { problems } : { value: out };
}
