// Loading a config file: parse (YAML or JSON), validate against the schema, resolve file paths
// relative to the config file. Problems come back as values naming file, key path and line.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { LineCounter, parseDocument, type Document } from 'yaml';
import { configSchema, type Config } from './schema.ts';

export interface ConfigProblem {
  readonly file: string;
  /** Dotted key path like `cache.allowTtl` or `routes[1].match.path`; empty for the whole file. */
  readonly key: string;
  readonly line?: number;
  readonly message: string;
}

export function formatProblem(problem: ConfigProblem): string {
  const where = problem.line ? `${problem.file}:${problem.line}` : problem.file;
  return problem.key ? `${where}: ${problem.key}: ${problem.message}` : `${where}: ${problem.message}`;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly problems: readonly ConfigProblem[];
  constructor(problems: readonly ConfigProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.problems = problems;
  }
}

export function keyPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}

/** Parses YAML (JSON is YAML) into a plain value, or problems with line numbers. */
export function parseYamlFile(file: string, text: string): { value: unknown; doc: Document; lines: LineCounter } | { problems: ConfigProblem[] } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    return {
      problems: doc.errors.map((error) => ({
        file,
        key: '',
        // With prettyErrors off the error carries no linePos: map its offset through the counter.
        line: error.linePos?.[0]?.line ?? lines.linePos(error.pos[0]).line,
        message: error.message.split('\n')[0] ?? error.message,
      })),
    };
  }
  return { value: doc.toJS({ maxAliasCount: 100 }), doc, lines };
}

export function lineOf(doc: Document, lines: LineCounter, path: readonly PropertyKey[]): number | undefined {
  for (let depth = path.length; depth > 0; depth--) {
    const node = doc.getIn(path.slice(0, depth) as unknown[], true) as { range?: [number, number, number] } | undefined;
    if (node && typeof node === 'object' && node.range) return lines.linePos(node.range[0]).line;
  }
  return undefined;
}

function readText(file: string): string | ConfigProblem {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    return { file, key: '', message: `cannot read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` };
  }
}

/** Loads and validates a config file; throws ConfigError listing every problem. */
export function loadConfig(file: string): Config {
  const text = readText(file);
  if (typeof text !== 'string') throw new ConfigError([text]);
  const parsed = parseYamlFile(file, text);
  if ('problems' in parsed) throw new ConfigError(parsed.problems);
  if (parsed.value === null || typeof parsed.value !== 'object' || Array.isArray(parsed.value)) {
    throw new ConfigError([{ file, key: '', message: 'expected a mapping of config keys at the top level' }]);
  }
  // reportInput: without it zod leaves `issue.input` unset, and every wrong type read as "required".
  const result = configSchema.safeParse(parsed.value, { reportInput: true });
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((issue) => {
        let message = issue.message;
        if (issue.code === 'unrecognized_keys') {
          return { file, key: keyPath([...issue.path, issue.keys[0] ?? '']), line: lineOf(parsed.doc, parsed.lines, [...issue.path, issue.keys[0] ?? '']), message: `unknown key${issue.keys.length > 1 ? `s ${issue.keys.join(', ')}` : ''}` };
        }
        if (issue.code === 'invalid_type' && issue.input === undefined) message = 'required';
        return { file, key: keyPath(issue.path), line: lineOf(parsed.doc, parsed.lines, issue.path), message };
      }),
    );
  }
  return resolvePaths(result.data, dirname(resolve(file)));
}

function resolvePaths(config: Config, base: string): Config {
  const at = (path: string | undefined): string | undefined => (path === undefined || isAbsolute(path) ? path : resolve(base, path));
  const issuers = (list: Config['grants']['issuers']) =>
    list.map((i) => ({ ...i, jwksFile: at(i.jwksFile), publicKeyFile: at(i.publicKeyFile) }));
  return {
    ...config,
    identity: {
      ...config.identity,
      certFile: at(config.identity.certFile),
      keyFile: at(config.identity.keyFile),
      bundleFile: at(config.identity.bundleFile),
      bundles: Object.fromEntries(Object.entries(config.identity.bundles).map(([td, f]) => [td, at(f)!])),
    },
    pdp: { ...config.pdp, policyFile: at(config.pdp.policyFile) },
    grants: { ...config.grants, issuers: issuers(config.grants.issuers) },
    posture: { ...config.posture, issuers: issuers(config.posture.issuers) },
    audit: { file: config.audit.file === '-' ? '-' : at(config.audit.file)! },
  };
}
