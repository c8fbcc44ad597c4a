// The compiled route table: first match wins, `{name}` captures one segment, a trailing `/**`
// matches any tail (including none). Compiled once per config load; matching splits nothing
// and builds no regex per request.
import type { RouteBody, RouteConfig } from '../config/schema.ts';

export type Sensitivity = 'low' | 'medium' | 'high' | 'critical';

export interface Route {
  readonly name: string;
  readonly privileged: boolean;
  readonly action: string;
  readonly sensitivity: Sensitivity;
  readonly cacheTtlMs: number | undefined;
  /** Resource template parts: literals and capture indexes (TAIL: what `/**` matched). */
  readonly resource: readonly (string | number)[];
}

export interface RouteMatch {
  readonly route: Route;
  readonly resource: string;
}

interface CompiledRoute {
  /** Position in the config: first match wins across both index lists. */
  readonly order: number;
  readonly route: Route;
  readonly methods: ReadonlySet<string> | undefined;
  /** Literal segment, or null for a `{capture}`. */
  readonly segments: readonly (string | null)[];
  readonly tail: boolean;
}

/** The `{**}` capture's index: the tail a trailing `/**` matched (SPEC: for gRPC, `Service/Method`). */
const TAIL = -1;

function compileResource(template: string | undefined, captureNames: readonly string[]): (string | number)[] {
  if (template === undefined) return [];
  const parts: (string | number)[] = [];
  let last = 0;
  for (const match of template.matchAll(/\{([A-Za-z_][A-Za-z0-9_]*|\*\*)\}/g)) {
    if (match.index > last) parts.push(template.slice(last, match.index));
    parts.push(match[1] === '**' ? TAIL : captureNames.indexOf(match[1]!));
    last = match.index + match[0].length;
  }
  if (last < template.length) parts.push(template.slice(last));
  return parts;
}

function toRoute(name: string, body: RouteBody, captureNames: readonly string[]): Route {
  return {
    name,
    privileged: body.privileged,
    action: body.action ?? '',
    // Required on privileged routes (the schema); an unprivileged one never reaches a PDP or tier.
    sensitivity: body.sensitivity ?? 'low',
    cacheTtlMs: body.cacheTtl,
    resource: compileResource(body.resource, captureNames),
  };
}

function compileRoute(config: RouteConfig, order: number): CompiledRoute {
  let raw = config.match.path.split('/').slice(1);
  const tail = raw[raw.length - 1] === '**';
  if (tail) raw = raw.slice(0, -1);
  if (raw.length === 1 && raw[0] === '') raw = [];
  const captureNames: string[] = [];
  const segments = raw.map((segment) => {
    if (segment.startsWith('{')) {
      captureNames.push(segment.slice(1, -1));
      return null;
    }
    return segment;
  });
  return {
    order,
    route: toRoute(config.name, config, captureNames),
    methods: config.match.methods ? new Set(config.match.methods) : undefined,
    segments,
    tail,
  };
}

const NONE: readonly CompiledRoute[] = [];

export class RouteTable {
  /** Routes by their first literal segment; routes starting with a capture or a tail are in `open`. */
  private readonly byFirstSegment = new Map<string, CompiledRoute[]>();
  private readonly open: CompiledRoute[] = [];
  private readonly fallback: Route | undefined;
  private readonly captures: string[] = [];

  constructor(routes: readonly RouteConfig[], defaultRoute: 'deny' | RouteBody) {
    routes.forEach((config, order) => {
      const compiled = compileRoute(config, order);
      const first = compiled.segments[0];
      if (typeof first !== 'string') {
        this.open.push(compiled);
        return;
      }
      let list = this.byFirstSegment.get(first);
      if (!list) this.byFirstSegment.set(first, (list = []));
      list.push(compiled);
    });
    this.fallback = defaultRoute === 'deny' ? undefined : toRoute('default', defaultRoute, []);
  }

  /** The first route matching a normalised path, or undefined for `no_route`. */
  match(method: string, path: string): RouteMatch | undefined {
    let end = path.indexOf('/', 1);
    if (end === -1) end = path.length;
    const literal = this.byFirstSegment.get(path.slice(1, end)) ?? NONE;
    const open = this.open;
    const captures = this.captures;
    // Walk both candidate lists in config order (first match wins).
    let i = 0;
    let j = 0;
    while (i < literal.length || j < open.length) {
      const compiled = j >= open.length || (i < literal.length && literal[i]!.order < open[j]!.order) ? literal[i++]! : open[j++]!;
      if (compiled.methods && !compiled.methods.has(method)) continue;
      captures.length = 0;
      const tail = matchSegments(compiled, path, captures);
      if (tail !== -1) return { route: compiled.route, resource: render(compiled.route.resource, captures, path, tail) };
    }
    return this.fallback ? { route: this.fallback, resource: render(this.fallback.resource, NONE_CAPTURES, path, path.length) } : undefined;
  }
}

const NONE_CAPTURES: readonly string[] = [];

/**
 * Walks the normalised path (which starts with `/` and has no empty inner segments). Returns
 * where the tail a trailing `/**` matched starts (path.length when it matched nothing), or -1 when
 * the route does not match.
 */
function matchSegments(compiled: CompiledRoute, path: string, captures: string[]): number {
  let position = 1;
  const { segments } = compiled;
  for (let i = 0; i < segments.length; i++) {
    if (position > path.length) return -1;
    let end = path.indexOf('/', position);
    if (end === -1) end = path.length;
    const expected = segments[i];
    if (expected === null) {
      if (end === position) return -1;
      captures.push(path.slice(position, end));
    } else if (end - position !== expected!.length || !path.startsWith(expected!, position)) {
      return -1;
    }
    position = end + 1;
  }
  if (compiled.tail) return Math.min(position, path.length);
  // All segments consumed: the path must end here (a trailing slash is a different path).
  const whole = segments.length === 0 ? path === '/' : position === path.length + 1;
  return whole ? path.length : -1;
}

function render(parts: readonly (string | number)[], captures: readonly string[], path: string, tailStart: number): string {
  if (parts.length === 1 && typeof parts[0] === 'string') return parts[0];
  let out = '';
  for (const part of parts) out += typeof part === 'string' ? part : part === TAIL ? path.slice(tailStart) : (captures[part] ?? '');
  return out;
}
