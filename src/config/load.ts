// Loading a config file: parse (YAML or JSON), validate against the schema, resolve file paths
// relative to the config file. Problems come back as values naming file, key path and line.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import { configSchema, type Config } from './schema.ts';
import { substituteEnv } from './env.ts';

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
    // In file order, as an editor would walk them (problems without a line keep their place at the end).
    const sorted = [...problems].sort((a, b) => (a.file === b.file ? (a.line ?? Infinity) - (b.line ?? Infinity) : 0));
    super(sorted.map(formatProblem).join('\n'));
    this.problems = sorted;
  }
}

/** A value as a message quotes it: short, and saying what kind of thing it is. */
function describeInput(input: unknown): string {
  if (typeof input === 'string') return JSON.stringify(input.length > 60 ? `${input.slice(0, 57)}...` : input);
  if (Array.isArray(input)) return 'a list';
  if (input === null) return 'null';
  if (typeof input === 'object') return 'a mapping';
  return String(input);
}

/** One line for a schema issue, in our words: what was expected and what was found. */
export function issueMessage(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') return `unknown key${issue.keys.length > 1 ? `s ${issue.keys.join(', ')}` : ''}`;
  if ((issue.code === 'invalid_type' || issue.code === 'invalid_value') && issue.input === undefined) return 'required';
  // The schema's own messages (durations, ports, fail-closed rules) already say it best; zod's
  // defaults ("Invalid input: …") are rephrased.
  if (!/^Invalid (input|option)/.test(issue.message)) return issue.message;
  if (issue.code === 'invalid_type') return `expected ${issue.expected}, got ${describeInput(issue.input)}`;
  if (issue.code === 'invalid_value') {
    return issue.input === undefined ? 'required' : `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${describeInput(issue.input)}`;
  }
  return issue.message;
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
  const substituted = substituteEnv(parsed.value, process.env);
  if ('problems' in substituted) {
    throw new ConfigError(substituted.problems.map(({ path, message }) => ({ file, key: keyPath(path), line: lineOf(parsed.doc, parsed.lines, path), message })));
  }
  // reportInput: without it zod leaves `issue.input` unset, and every wrong type read as "required".
  const result = configSchema.safeParse(substituted.value, { reportInput: true });
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((issue) => {
        const path = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0] ?? ''] : issue.path;
        return { file, key: keyPath(path), line: lineOf(parsed.doc, parsed.lines, path), message: issueMessage(issue) };
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
    accessLog: { file: config.accessLog.file === '-' || config.accessLog.file === 'off' ? config.accessLog.file : at(config.accessLog.file)! },
    revocation: { ...config.revocation, passwordFile: at(config.revocation.passwordFile) },
    signals: config.signals && { ...config.signals, bearerTokenFile: at(config.signals.bearerTokenFile), transmitters: config.signals.transmitters.map((t) => ({ ...t, jwksFile: at(t.jwksFile) })) },
  };
}
