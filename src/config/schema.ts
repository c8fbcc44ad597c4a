// The config schema (SPEC "Config file"): the single source of truth for keys, defaults and
// the messages a user sees. Every object is strict: an unknown key is an error, not ignored.
import { z } from 'zod';
import { parseDuration } from './duration.ts';
import { parseSpiffeId, parseTrustDomain, SpiffeIdError } from '../identity/spiffe-id.ts';
import { isBadPath, normaliseTarget } from '../routing/normalise-path.ts';

const duration = z.string({ error: (issue) => `expected a duration like "30s", got ${describe(issue.input)}` }).transform((text, ctx) => {
  const ms = parseDuration(text);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: `expected a duration like "30s", got ${JSON.stringify(text)}` });
    return z.NEVER;
  }
  return ms;
});

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

const nonEmpty = z.string({ error: (issue) => `expected a string, got ${describe(issue.input)}` }).min(1, 'must not be empty');
const port = z.number({ error: (issue) => `expected a port number, got ${describe(issue.input)}` }).int().min(0).max(65535);

const trustDomain = z.string().transform((text, ctx) => {
  try {
    return parseTrustDomain(text);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: `invalid trust domain ${JSON.stringify(text)}: ${(error as SpiffeIdError).message}` });
    return z.NEVER;
  }
});

/** A SPIFFE ID pattern: `spiffe://td/path`, with `*` inside a segment and `/**` as a tail. */
const spiffePattern = z.string().superRefine((text, ctx) => {
  const concrete = text.replace(/\/\*\*$/, '').replace(/\*/g, 'x');
  try {
    parseSpiffeId(concrete);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: `invalid SPIFFE ID pattern ${JSON.stringify(text)}: ${(error as SpiffeIdError).message}` });
  }
});

const sensitivity = z.enum(['low', 'medium', 'high', 'critical']);
const method = z.string().regex(/^[A-Za-z]+$/, 'expected an HTTP method like "GET"').transform((m) => m.toUpperCase());

const routePath = z.string().superRefine((text, ctx) => {
  if (!text.startsWith('/')) ctx.addIssue({ code: 'custom', message: `path must start with "/", got ${JSON.stringify(text)}` });
  const segments = text.split('/').slice(1);
  segments.forEach((segment, index) => {
    if (segment === '**' && index !== segments.length - 1) ctx.addIssue({ code: 'custom', message: '"/**" is only allowed at the end of a path' });
    else if (segment.includes('{') && !/^\{[A-Za-z_][A-Za-z0-9_]*\}$/.test(segment)) ctx.addIssue({ code: 'custom', message: `a capture must be a whole segment like "{id}", got ${JSON.stringify(segment)}` });
  });
  if (!text.startsWith('/')) return;
  // Requests are matched after normalisation, so a path that is not itself normal (`//`, `.`,
  // `..`, `%7E`, `%c3`, a `?`) could never match: say so instead of silently never matching.
  const concrete = text.replace(/\/\*\*$/, '').replace(/\{[A-Za-z_][A-Za-z0-9_]*\}/g, 'x') || '/';
  const normal = normaliseTarget(concrete, { allowPathParams: true });
  if (isBadPath(normal)) ctx.addIssue({ code: 'custom', message: `path ${JSON.stringify(text)} can never match a request: ${normal.bad}` });
  else if (normal.query !== '') ctx.addIssue({ code: 'custom', message: `path ${JSON.stringify(text)} has a query: routes match the normalised path only, never the query` });
  else if (normal.path !== concrete) ctx.addIssue({ code: 'custom', message: `path ${JSON.stringify(text)} is not in normal form (requests are matched after normalisation; write ${JSON.stringify(normal.path)})` });
});

const routeBody = {
  privileged: z.boolean().default(true),
  action: nonEmpty.optional(),
  resource: nonEmpty.optional(),
  // No default (SPEC step 2): a privileged route must name its sensitivity, or a forgotten one
  // would silently pick a tier (crossFieldRules reports it). An unprivileged route may omit it.
  sensitivity: sensitivity.optional(),
  cacheTtl: duration.optional(),
};

const route = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'expected a name of letters, digits, "_", "-", "." (at most 64)'),
  match: z.strictObject({ methods: z.array(method).min(1).optional(), path: routePath }),
  ...routeBody,
});

const keySource = {
  issuer: nonEmpty,
  jwksFile: nonEmpty.optional(),
  jwksUrl: z.url({ protocol: /^https?$/ }).optional(),
  publicKeyFile: nonEmpty.optional(),
};
const issuer = z.strictObject(keySource).superRefine((value, ctx) => {
  const given = [value.jwksFile, value.jwksUrl, value.publicKeyFile].filter((v) => v !== undefined).length;
  if (given !== 1) ctx.addIssue({ code: 'custom', message: 'give exactly one of jwksFile, jwksUrl, publicKeyFile' });
});

export const configSchema = z
  .strictObject({
    listen: z
      .strictObject({
        address: nonEmpty.default('0.0.0.0'),
        port: port.default(8443),
        // ALPN, in order of preference (SPEC "Protocols and streams").
        protocols: z
          .array(z.enum(['h2', 'http/1.1']))
          .min(1, 'offer at least one protocol')
          .refine((list) => new Set(list).size === list.length, 'each protocol at most once')
          .default(['h2', 'http/1.1']),
      })
      .prefault({}),
    identity: z.strictObject({
      source: z.enum(['files', 'workload-api']).default('files'),
      certFile: nonEmpty.optional(),
      keyFile: nonEmpty.optional(),
      bundleFile: nonEmpty.optional(),
      trustDomains: z.array(trustDomain).min(1, 'list at least one trust domain'),
      bundles: z.record(z.string(), nonEmpty).default({}),
      allow: z.array(spiffePattern).min(1, 'list at least one allowed peer pattern'),
      workloadApiSocket: nonEmpty.optional(),
    }),
    upstream: z.strictObject({
      // The service runs beside the sidecar: plain HTTP on loopback or a unix socket (TLS to it is not supported).
      url: z.string().refine((u) => /^http:\/\/[^/]+\/?$/.test(u) || /^unix:\/.+/.test(u), 'expected "http://host:port" or "unix:/path/to.sock" (TLS to the service is not supported)'),
      timeout: duration.default(30_000),
      connectTimeout: duration.default(5_000),
      // http1: every request (HTTP/2 ones translated) over our HTTP/1.1 pool; h2c: HTTP/2 in clear
      // with prior knowledge, which gRPC needs.
      protocol: z.enum(['http1', 'h2c']).default('http1'),
      connections: z.number().int().min(1).max(10_000).default(128),
    }),
    routes: z.array(route).default([]),
    defaultRoute: z.union([z.literal('deny'), z.strictObject(routeBody)]).default('deny'),
    routing: z
      .strictObject({
        allowPathParams: z.boolean().default(false),
        // SPEC "To the service": only these Upgrade tokens are tunnelled; h2c never (it would turn
        // the connection into HTTP/2 behind our back, past every per-request check).
        upgrades: z
          .array(
            z
              .string()
              .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$/, 'expected an Upgrade protocol token like "websocket"')
              .transform((t) => t.toLowerCase())
              .refine((t) => t !== 'h2c', '"h2c" can never be tunnelled'),
          )
          .default(['websocket']),
      })
      .prefault({}),
    pdp: z
      .strictObject({
        kind: z.enum(['embedded', 'authzen', 'opa', 'ext-authz']).default('embedded'),
        policyFile: nonEmpty.optional(),
        url: z.url({ protocol: /^https?$/ }).optional(),
        address: nonEmpty.optional(),
        // At most 10 s: the decision-duration histogram's buckets end there, and a PDP slower than
        // that is down as far as a request is concerned.
        timeout: duration.refine((ms) => ms >= 1 && ms <= 10_000, 'expected a PDP timeout between 1ms and 10s').default(250),
        onError: z.literal('deny', { error: 'only "deny" is supported: Portcullis never fails open' }).default('deny'),
      })
      .prefault({}),
    cache: z
      .strictObject({
        maxEntries: z.number().int().min(0).max(10_000_000).default(100_000),
        allowTtl: duration.default(30_000),
        denyTtl: duration.default(2_000),
      })
      .prefault({}),
    grants: z
      .strictObject({
        header: nonEmpty.default('x-jit-grant'),
        issuers: z.array(issuer).default([]),
        audience: z.union([z.literal('self'), z.array(nonEmpty).min(1)]).default('self'),
        clockSkew: duration.default(2_000),
        // A grant whose exp - iat is longer is refused (grant_ttl_too_long); it also bounds how
        // long a revocation must be kept (SPEC "Fleet-wide revocation").
        maxLifetime: duration.default(24 * 3_600_000),
      })
      .prefault({}),
    posture: z
      .strictObject({ header: nonEmpty.default('x-device-posture'), issuers: z.array(issuer).default([]), maxAge: duration.default(300_000) })
      .prefault({}),
    intent: z.strictObject({ header: nonEmpty.default('x-intent') }).prefault({}),
    admin: z
      .strictObject({
        address: nonEmpty.default('127.0.0.1'),
        port: port.default(9901),
        // Binding the admin API beyond loopback must be a deliberate choice.
        allowNonLoopback: z.boolean().default(false),
      })
      .prefault({}),
    audit: z.strictObject({ file: nonEmpty.default('-') }).prefault({}),
    // SPEC "Responses": one JSON line per request, refusals included; off by default.
    accessLog: z.strictObject({ file: nonEmpty.default('off') }).prefault({}),
    // Revocations held in memory (every source): at the bound, privileged requests refuse with
    // revocation_unavailable rather than forget one (SPEC "Fleet-wide revocation").
    revocation: z.strictObject({ maxEntries: z.number().int().min(1).max(100_000_000).default(1_000_000) }).prefault({}),
    // Reload by itself when the config or policy file changes (as a ConfigMap update does).
    reload: z.strictObject({ watch: z.boolean().default(false), interval: duration.default(2_000) }).prefault({}),
    limits: z
      .strictObject({
        maxHeaderBytes: z.number().int().min(1024).max(1_048_576).default(16_384),
        maxTokenBytes: z.number().int().min(256).max(65_536).default(8_192),
        headersTimeout: duration.default(10_000),
        idleTimeout: duration.default(60_000),
        shutdownTimeout: duration.default(10_000),
        // Node leaves HTTP/2 streams per connection unbounded; SPEC "Protocols and streams" caps them.
        maxConcurrentStreams: z.number().int().min(1).max(10_000).default(100),
      })
      .prefault({}),
  })
  // The cross-field rules also run when some fields already failed (`when`), so that `check`
  // lists every problem at once; they therefore read the value defensively, as possibly raw input.
  .superRefine((config, ctx) => crossFieldRules(config, (path, message) => ctx.addIssue({ code: 'custom', path, message })), {
    when: (payload) => payload.value !== null && typeof payload.value === 'object' && !Array.isArray(payload.value),
  });

type Loose = Record<string, unknown>;
const loose = (value: unknown): Loose => (value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Loose) : {});
const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

function crossFieldRules(value: unknown, report: (path: PropertyKey[], message: string) => void): void {
  const config = loose(value);
  if (config.identity !== undefined) {
    const identity = loose(config.identity);
    if ((identity.source ?? 'files') === 'files') {
      for (const key of ['certFile', 'keyFile', 'bundleFile'] as const) {
        if (identity[key] === undefined) report(['identity', key], 'required when identity.source is "files"');
      }
    } else if (identity.source === 'workload-api') {
      if (identity.workloadApiSocket === undefined) report(['identity', 'workloadApiSocket'], 'required when identity.source is "workload-api"');
      else if (typeof identity.workloadApiSocket === 'string' && !/^unix:(\/\/)?\/./.test(identity.workloadApiSocket)) {
        report(['identity', 'workloadApiSocket'], `expected "unix:///path/to/agent.sock", got ${JSON.stringify(identity.workloadApiSocket)}`);
      }
    }
    const trustDomains = Array.isArray(identity.trustDomains) ? (identity.trustDomains as unknown[]) : undefined;
    for (const domain of Object.keys(loose(identity.bundles))) {
      if (trustDomains && !trustDomains.includes(domain)) {
        report(['identity', 'bundles', domain], `trust domain "${domain}" has a bundle but is not listed in identity.trustDomains`);
      }
    }
  }
  const names = new Set<string>();
  (Array.isArray(config.routes) ? (config.routes as unknown[]) : []).forEach((item, index) => {
    const r = loose(item);
    const name = str(r.name);
    if (name !== undefined) {
      if (names.has(name)) report(['routes', index, 'name'], `duplicate route name "${name}"`);
      names.add(name);
    }
    if (r.privileged !== false && r.action === undefined) report(['routes', index, 'action'], 'required for a privileged route');
    if (r.privileged !== false && r.sensitivity === undefined) report(['routes', index, 'sensitivity'], 'required for a privileged route');
    const path = str(loose(r.match).path) ?? '';
    const captures = new Set([...path.matchAll(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m) => m[1]));
    // `{**}` is the tail a trailing `/**` matched.
    if (path.endsWith('/**')) captures.add('**');
    for (const ref of (str(r.resource) ?? '').matchAll(/\{([^}]*)\}/g)) {
      if (!captures.has(ref[1])) report(['routes', index, 'resource'], `"{${ref[1]}}" is not captured by match.path`);
    }
  });
  if (config.defaultRoute !== undefined && config.defaultRoute !== 'deny') {
    const fallback = loose(config.defaultRoute);
    if (fallback.privileged !== false && fallback.action === undefined) report(['defaultRoute', 'action'], 'required for a privileged route');
    if (fallback.privileged !== false && fallback.sensitivity === undefined) report(['defaultRoute', 'sensitivity'], 'required for a privileged route');
    // The default route has no match.path, so a `{capture}` would always render empty.
    for (const ref of (str(fallback.resource) ?? '').matchAll(/\{([^}]*)\}/g)) {
      report(['defaultRoute', 'resource'], `"{${ref[1]}}" cannot be used: defaultRoute has no match.path to capture from`);
    }
  }
  const pdp = loose(config.pdp);
  if (pdp.kind === 'embedded' && pdp.policyFile === undefined) report(['pdp', 'policyFile'], 'required when pdp.kind is "embedded"');
  if ((pdp.kind === 'authzen' || pdp.kind === 'opa') && pdp.url === undefined) report(['pdp', 'url'], `required when pdp.kind is "${pdp.kind}"`);
  if (pdp.kind === 'ext-authz' && pdp.address === undefined) report(['pdp', 'address'], 'required when pdp.kind is "ext-authz"');
  const admin = loose(config.admin);
  const address = str(admin.address);
  if (admin.allowNonLoopback !== true && address !== undefined && !isLoopback(address)) {
    report(['admin', 'address'], `"${address}" is not loopback; set admin.allowNonLoopback: true to expose the admin API`);
  }
}

export function isLoopback(address: string): boolean {
  return address === 'localhost' || address === '::1' || /^127\.\d+\.\d+\.\d+$/.test(address);
}

export type Config = z.infer<typeof configSchema>;
export type RouteConfig = z.infer<typeof route>;
export type RouteBody = Omit<RouteConfig, 'name' | 'match'>;
export type IssuerConfig = z.infer<typeof issuer>;
