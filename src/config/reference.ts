// docs/CONFIG.md, generated from the zod schema (the single source of truth, SPEC "Config
// file"): every key with its type, default, and whether a reload applies it. The schema is
// walked by its definitions, so a key added to it appears here with no change to this file; only
// a key that needs a restart must be named in RESTART below.
import type { z } from 'zod';
import { configSchema } from './schema.ts';

/**
 * Keys a reload does not apply (src/cli/instance.ts: a reload builds a new generation, that is
 * routes, upstream, PDP, token verifiers, headers, TTLs and identity.allow; the listener, the admin
 * listener, the SVID source, the decision cache, the audit log and the watcher are built once).
 * A key listed as `a.b` covers everything under it.
 */
export const RESTART: Readonly<Record<string, string>> = {
  listen: 'the listener is bound once',
  'identity.source': 'the SVID source is opened once',
  'identity.certFile': 'the SVID source is opened once (the files themselves are re-read on change)',
  'identity.keyFile': 'the SVID source is opened once (the files themselves are re-read on change)',
  'identity.bundleFile': 'the SVID source is opened once (the files themselves are re-read on change)',
  'identity.bundles': 'the SVID source is opened once',
  'identity.trustDomains': 'the SVID source is opened once',
  'identity.workloadApiSocket': 'the SVID source is opened once',
  admin: 'the admin listener is bound once',
  'audit.file': 'the audit log is opened once',
  'accessLog.file': 'the access log is opened once',
  'cache.maxEntries': 'the decision cache is built once (it survives reloads)',
  'reload.interval': 'the watcher is started once',
  'limits.maxHeaderBytes': 'a listener setting',
  'limits.headersTimeout': 'a listener setting',
  'limits.idleTimeout': 'a listener setting',
};

interface Node {
  readonly _zod: { readonly def: Def };
}
interface Def {
  readonly type: string;
  readonly [key: string]: unknown;
}
interface Check {
  readonly _zod: { readonly def: { readonly check: string; readonly value?: unknown; readonly minimum?: unknown; readonly maximum?: unknown; readonly format?: string; readonly inclusive?: boolean } };
}

export interface ReferenceRow {
  readonly key: string;
  readonly type: string;
  readonly default: string;
  readonly reload: string;
}

const def = (schema: Node): Def => schema._zod.def;

export function formatDuration(ms: number): string {
  for (const [unit, size] of [['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) if (ms !== 0 && ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

/** A duration is a string-to-number pipe: "1s" goes in, 1000 comes out. */
function isDuration(schema: Node): boolean {
  const result = (schema as unknown as z.ZodType).safeParse('1s');
  return result.success && result.data === 1000;
}

function checksOf(schema: Node): string[] {
  const parts: string[] = [];
  for (const check of (def(schema).checks as Check[] | undefined) ?? []) {
    const c = check._zod.def;
    if (c.check === 'greater_than') parts.push(`${c.inclusive ? '≥' : '>'} ${String(c.value)}`);
    else if (c.check === 'less_than') parts.push(`${c.inclusive ? '≤' : '<'} ${String(c.value)}`);
    else if (c.check === 'min_length' && c.minimum !== 1) parts.push(`at least ${String(c.minimum)} long`);
    else if (c.check === 'min_length' && c.minimum === 1 && def(schema).type === 'array') parts.push('not empty');
  }
  return parts;
}

/** Strips default/prefault/optional wrappers, keeping what they say. */
function unwrap(schema: Node): { inner: Node; defaultValue?: unknown; hasDefault: boolean; optional: boolean } {
  let inner = schema;
  let defaultValue: unknown;
  let hasDefault = false;
  let optional = false;
  for (;;) {
    const d = def(inner);
    if (d.type === 'default' || d.type === 'prefault') {
      if (!hasDefault) defaultValue = d.defaultValue;
      hasDefault = true;
    } else if (d.type === 'optional' || d.type === 'nullable' || d.type === 'readonly' || d.type === 'catch') {
      optional ||= d.type === 'optional';
    } else break;
    inner = d.innerType as Node;
  }
  return { inner, defaultValue, hasDefault, optional };
}

function typeOf(schema: Node): string {
  const { inner } = unwrap(schema);
  const d = def(inner);
  if (isDuration(inner)) return 'duration';
  const checks = checksOf(inner);
  const suffix = checks.length > 0 ? ` (${checks.join(', ')})` : '';
  switch (d.type) {
    case 'string':
      return d.format === 'url' ? 'URL' : `string${suffix}`;
    case 'number': {
      const int = ((d.checks as Check[] | undefined) ?? []).some((c) => c._zod.def.check === 'number_format' && /int/.test(c._zod.def.format ?? ''));
      return `${int ? 'integer' : 'number'}${suffix}`;
    }
    case 'boolean':
      return 'boolean';
    case 'enum':
      return Object.values(d.entries as Record<string, string>).map((v) => `\`${v}\``).join(' \\| ');
    case 'literal':
      return (d.values as unknown[]).map((v) => `\`${String(v)}\``).join(' \\| ');
    case 'array':
      return `list of ${typeOf(d.element as Node)}${suffix}`;
    case 'record':
      return `map of ${typeOf(d.keyType as Node)} to ${typeOf(d.valueType as Node)}`;
    case 'object':
      return 'mapping';
    case 'union':
      return (d.options as Node[]).map(typeOf).join(' or ');
    case 'pipe':
      return typeOf(d.in as Node);
    default:
      return d.type;
  }
}

function renderDefault(schema: Node, value: unknown): string {
  if (typeof value === 'number' && isDuration(unwrap(schema).inner)) return `\`${formatDuration(value)}\``;
  if (typeof value === 'string') return value === '' ? '`""`' : `\`${value}\``;
  if (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string')) return `\`[${value.join(', ')}]\``;
  return `\`${JSON.stringify(value)}\``;
}

function restartReason(key: string): string | undefined {
  const bare = key.replace(/\[\]/g, '');
  for (let at = bare.length; at > 0; at = bare.lastIndexOf('.', at - 1)) {
    const reason = RESTART[bare.slice(0, at)];
    if (reason) return reason;
    if (at <= 0) break;
  }
  return undefined;
}

/** Every key of an object schema, depth first in schema order; lists of mappings as `key[].sub`. */
export function referenceRows(schema: Node = configSchema as unknown as Node, prefix = ''): ReferenceRow[] {
  const rows: ReferenceRow[] = [];
  const shape = def(unwrap(schema).inner).shape as Record<string, Node>;
  for (const [name, field] of Object.entries(shape)) {
    const key = prefix ? `${prefix}.${name}` : name;
    const { inner, defaultValue, hasDefault, optional } = unwrap(field);
    const d = def(inner);
    // A section (a mapping whose keys all have defaults) shows its keys, not `{}`.
    const section = d.type === 'object' && hasDefault && typeof defaultValue === 'object' && defaultValue !== null && Object.keys(defaultValue).length === 0;
    const reason = restartReason(key);
    const mapping = d.type === 'object' || (d.type === 'array' && def(unwrap(d.element as Node).inner).type === 'object');
    rows.push({
      key,
      type: typeOf(field),
      default: hasDefault ? (section ? '(its keys\u2019 defaults)' : renderDefault(field, defaultValue)) : optional ? '(none)' : '**required**',
      reload: reason ? `restart: ${reason}` : mapping ? 'per key' : 'reload',
    });
    const objects: [Node, string][] = [];
    if (d.type === 'object') objects.push([inner, key]);
    if (d.type === 'array' && def(unwrap(d.element as Node).inner).type === 'object') objects.push([unwrap(d.element as Node).inner, `${key}[]`]);
    if (d.type === 'union') for (const option of d.options as Node[]) if (def(unwrap(option).inner).type === 'object') objects.push([unwrap(option).inner, key]);
    for (const [object, at] of objects) rows.push(...referenceRows(object, at));
  }
  return rows;
}

export function configReference(schema: Node = configSchema as unknown as Node): string {
  const rows = referenceRows(schema);
  return [
    '# Config reference',
    '',
    '<!-- Generated from src/config/schema.ts by `npm run docs:config`; do not edit by hand (a test fails when this file and the schema differ). -->',
    '',
    'Every key `portcullis run` and `portcullis check` accept (YAML; JSON is accepted). Unknown keys are errors.',
    'Durations are strings: `250ms`, `30s`, `5m`, `1h`. Relative file paths are read relative to the config file.',
    '`${NAME}` in any string value is the environment variable `NAME` (an unset one is an error; `$${` is a literal `${`).',
    'A key marked **required** must be given; some optional keys are required by others (for example `identity.certFile` when',
    '`identity.source` is `files`): `portcullis check` names each such rule.',
    '',
    '**Reload** (`SIGHUP`, `POST /admin/reload`, `reload.watch`) applies a key marked `reload` to the next request;',
    'a key marked `restart` keeps its old value until the process restarts.',
    '',
    '| key | type | default | on reload |',
    '|---|---|---|---|',
    ...rows.map((r) => `| \`${r.key}\` | ${r.type} | ${r.default} | ${r.reload} |`),
    '',
  ].join('\n');
}
