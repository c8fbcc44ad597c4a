import { describe, expect, it } from 'vitest';
import { configSchema, type RouteBody, type RouteConfig } from '../../../src/config/schema.ts';
import { RouteTable } from '../../../src/routing/route-table.ts';

const BASE = {
  identity: { certFile: 'a', keyFile: 'b', bundleFile: 'c', trustDomains: ['example.org'], allow: ['spiffe://example.org/**'] },
  upstream: { url: 'http://127.0.0.1:8080' },
  pdp: { policyFile: 'policy.yaml' },
};

/** Routes and defaultRoute as the config loader produces them (defaults, durations, methods). */
function parse(routes: unknown[], defaultRoute?: unknown): { routes: RouteConfig[]; defaultRoute: 'deny' | RouteBody } {
  const result = configSchema.safeParse({ ...BASE, routes, ...(defaultRoute === undefined ? {} : { defaultRoute }) });
  if (!result.success) throw new Error(JSON.stringify(result.error.issues));
  return { routes: result.data.routes, defaultRoute: result.data.defaultRoute };
}

function table(routes: unknown[], defaultRoute?: unknown): RouteTable {
  const parsed = parse(routes, defaultRoute);
  return new RouteTable(parsed.routes, parsed.defaultRoute);
}

function open(name: string, path: string, methods?: string[]): unknown {
  return { name, match: methods ? { methods, path } : { path }, privileged: false };
}

describe('RouteTable: matching order and methods', () => {
  it('first match wins', () => {
    const t = table([open('specific', '/orders/{id}'), open('catchall', '/orders/**'), open('again', '/orders/{id}')]);
    expect(t.match('GET', '/orders/1')?.route.name).toBe('specific');
    expect(t.match('GET', '/orders/1/items')?.route.name).toBe('catchall');
  });

  it('first match wins even when a later route is more specific', () => {
    const t = table([open('catchall', '/**'), open('health', '/healthz')]);
    expect(t.match('GET', '/healthz')?.route.name).toBe('catchall');
  });

  it('filters by method and falls through to later routes', () => {
    const t = table([open('read', '/orders/{id}', ['GET', 'HEAD']), open('write', '/orders/{id}', ['PUT'])]);
    expect(t.match('GET', '/orders/1')?.route.name).toBe('read');
    expect(t.match('HEAD', '/orders/1')?.route.name).toBe('read');
    expect(t.match('PUT', '/orders/1')?.route.name).toBe('write');
    expect(t.match('DELETE', '/orders/1')).toBeUndefined();
  });

  it('upper-cases methods written in lower case in config', () => {
    const t = table([open('read', '/x', ['get'])]);
    expect(t.match('GET', '/x')?.route.name).toBe('read');
  });

  it('without methods, any method matches', () => {
    const t = table([open('any', '/x')]);
    for (const m of ['GET', 'POST', 'DELETE', 'PATCH', 'OPTIONS']) expect(t.match(m, '/x')?.route.name).toBe('any');
  });

  it('matches literal segments exactly and case-sensitively', () => {
    const t = table([open('orders', '/orders')]);
    expect(t.match('GET', '/orders')?.route.name).toBe('orders');
    expect(t.match('GET', '/Orders')).toBeUndefined();
    expect(t.match('GET', '/order')).toBeUndefined();
    expect(t.match('GET', '/ordersx')).toBeUndefined();
    expect(t.match('GET', '/orders/x')).toBeUndefined();
    expect(t.match('GET', '/')).toBeUndefined();
  });

  it('a root route matches only "/"', () => {
    const t = table([open('root', '/')]);
    expect(t.match('GET', '/')?.route.name).toBe('root');
    expect(t.match('GET', '/a')).toBeUndefined();
  });
});

describe('RouteTable: captures', () => {
  const t = table([
    { name: 'refund', match: { methods: ['POST'], path: '/orders/{id}/refund' }, action: 'orders.refund', resource: 'order:{id}', sensitivity: 'high' },
  ]);

  it('{id} captures exactly one non-empty segment', () => {
    expect(t.match('POST', '/orders/42/refund')?.resource).toBe('order:42');
    expect(t.match('POST', '/orders/42/43/refund')).toBeUndefined();
    expect(t.match('POST', '/orders/refund')).toBeUndefined();
    expect(t.match('POST', '/orders//refund')).toBeUndefined();
  });

  it('a trailing capture needs a non-empty segment', () => {
    const c = table([open('one', '/items/{id}')]);
    expect(c.match('GET', '/items/a')?.route.name).toBe('one');
    expect(c.match('GET', '/items/')).toBeUndefined();
    expect(c.match('GET', '/items')).toBeUndefined();
    expect(c.match('GET', '/items/a/')).toBeUndefined();
    expect(c.match('GET', '/items/a/b')).toBeUndefined();
  });

  it('renders the resource template from captures', () => {
    const m = t.match('POST', '/orders/A-7%20x/refund');
    expect(m?.route).toMatchObject({ name: 'refund', action: 'orders.refund', sensitivity: 'high', privileged: true });
    expect(m?.resource).toBe('order:A-7%20x');
  });

  it('renders several captures in any order, with literals around them', () => {
    const c = table([
      { name: 'item', match: { path: '/t/{tenant}/orders/{id}' }, action: 'read', resource: 'x/{id}@{tenant}!', sensitivity: 'low' },
    ]);
    expect(c.match('GET', '/t/acme/orders/9')?.resource).toBe('x/9@acme!');
  });

  it('does not leak captures from a route that failed part-way', () => {
    const c = table([
      { name: 'first', match: { path: '/a/{x}/never' }, action: 'a', resource: 'first:{x}', sensitivity: 'low' },
      { name: 'second', match: { path: '/a/{y}/b' }, action: 'b', resource: 'second:{y}', sensitivity: 'low' },
    ]);
    expect(c.match('GET', '/a/one/b')).toMatchObject({ route: { name: 'second' }, resource: 'second:one' });
  });

  it('a literal resource is used as is; no resource renders empty', () => {
    const c = table([
      { name: 'lit', match: { path: '/lit' }, action: 'a', resource: 'orders', sensitivity: 'low' },
      { name: 'none', match: { path: '/none' }, action: 'a', sensitivity: 'low' },
    ]);
    expect(c.match('GET', '/lit')?.resource).toBe('orders');
    expect(c.match('GET', '/none')?.resource).toBe('');
  });
});

describe('RouteTable: /** tail', () => {
  const t = table([open('api', '/api/**')]);

  it.each(['/api', '/api/', '/api/x', '/api/x/y', '/api/x/y/'])('matches %j', (path) => {
    expect(t.match('GET', path)?.route.name).toBe('api');
  });

  it.each(['/apix', '/ap', '/', '/x/api', '/API/x'])('does not match %j', (path) => {
    expect(t.match('GET', path)).toBeUndefined();
  });

  it('a root tail matches everything', () => {
    const all = table([open('all', '/**')]);
    for (const p of ['/', '/a', '/a/b/', '/x/y/z']) expect(all.match('GET', p)?.route.name).toBe('all');
  });

  it('captures before a tail', () => {
    const c = table([{ name: 'c', match: { path: '/t/{tenant}/**' }, action: 'a', resource: 'tenant:{tenant}', sensitivity: 'low' }]);
    expect(c.match('GET', '/t/acme')?.resource).toBe('tenant:acme');
    expect(c.match('GET', '/t/acme/x/y')?.resource).toBe('tenant:acme');
    expect(c.match('GET', '/t/')).toBeUndefined();
    expect(c.match('GET', '/t')).toBeUndefined();
  });
});

describe('RouteTable: trailing slash', () => {
  it('a trailing slash is a different path', () => {
    const t = table([open('noslash', '/a'), open('slash', '/b/')]);
    expect(t.match('GET', '/a')?.route.name).toBe('noslash');
    expect(t.match('GET', '/a/')).toBeUndefined();
    expect(t.match('GET', '/b/')?.route.name).toBe('slash');
    expect(t.match('GET', '/b')).toBeUndefined();
    expect(t.match('GET', '/b/c')).toBeUndefined();
  });

  it('a trailing slash after a capture is distinct too', () => {
    const t = table([open('slash', '/o/{id}/')]);
    expect(t.match('GET', '/o/1/')?.route.name).toBe('slash');
    expect(t.match('GET', '/o/1')).toBeUndefined();
  });
});

describe('RouteTable: route fields', () => {
  it('applies schema defaults: privileged true, no cache TTL', () => {
    const t = table([{ name: 'r', match: { path: '/r' }, action: 'r.read', sensitivity: 'high' }]);
    expect(t.match('GET', '/r')?.route).toEqual({ name: 'r', privileged: true, action: 'r.read', sensitivity: 'high', cacheTtlMs: undefined, resource: [] });
  });

  it('a privileged route has no default sensitivity (SPEC step 2); an unprivileged one may omit it', () => {
    expect(() => table([{ name: 'r', match: { path: '/r' }, action: 'r.read' }])).toThrow(/"sensitivity"[^}]*required for a privileged route/);
    expect(() => table([], { action: 'r.read' })).toThrow(/"defaultRoute","sensitivity"[^}]*required for a privileged route/);
    expect(table([{ name: 'open', match: { path: '/o' }, privileged: false }]).match('GET', '/o')?.route).toMatchObject({ privileged: false, sensitivity: 'low' });
  });

  it('carries cacheTtl in milliseconds', () => {
    const t = table([{ name: 'r', match: { path: '/r' }, action: 'a', cacheTtl: '10s', sensitivity: 'low' }]);
    expect(t.match('GET', '/r')?.route.cacheTtlMs).toBe(10_000);
  });

  it('a non-privileged route has an empty action', () => {
    const t = table([open('h', '/healthz')]);
    expect(t.match('GET', '/healthz')?.route).toMatchObject({ privileged: false, action: '' });
  });
});

describe('RouteTable: defaultRoute', () => {
  it('"deny" gives no match', () => {
    const t = table([open('h', '/healthz')], 'deny');
    expect(t.match('GET', '/other')).toBeUndefined();
  });

  it('defaults to deny when not configured', () => {
    expect(table([]).match('GET', '/')).toBeUndefined();
  });

  it('a route object is used for unmatched requests, named "default"', () => {
    const t = table([open('h', '/healthz', ['GET'])], { action: 'fallback.any', resource: 'service', sensitivity: 'low' });
    expect(t.match('GET', '/healthz')?.route.name).toBe('h');
    const m = t.match('POST', '/healthz');
    expect(m?.route).toMatchObject({ name: 'default', action: 'fallback.any', sensitivity: 'low', privileged: true });
    expect(m?.resource).toBe('service');
    expect(t.match('GET', '/anything/else')?.route.name).toBe('default');
  });

  it('works with directly constructed RouteConfig values', () => {
    const routes: RouteConfig[] = [
      { name: 'r', match: { methods: ['GET'], path: '/r/{id}' }, privileged: true, action: 'r.get', resource: 'r:{id}', sensitivity: 'critical', cacheTtl: 500 },
    ];
    const t = new RouteTable(routes, { privileged: false, sensitivity: 'low', action: undefined, resource: undefined, cacheTtl: undefined });
    expect(t.match('GET', '/r/7')).toEqual({
      route: { name: 'r', privileged: true, action: 'r.get', sensitivity: 'critical', cacheTtlMs: 500, resource: ['r:', 0] },
      resource: 'r:7',
    });
    expect(t.match('GET', '/x')?.route).toMatchObject({ name: 'default', privileged: false });
  });
});

describe('RouteTable: the {**} capture (SPEC "Protocols and streams")', () => {
  const grpc = table([{ name: 'orders-grpc', match: { path: '/orders.v1.Orders/**' }, action: 'orders.grpc', resource: 'grpc:{**}', sensitivity: 'medium' }]);
  it.each([
    ['/orders.v1.Orders/Get', 'grpc:Get'],
    ['/orders.v1.Orders/Watch/extra', 'grpc:Watch/extra'],
    ['/orders.v1.Orders', 'grpc:'],
    ['/orders.v1.Orders/', 'grpc:'],
  ])('%s renders %s', (path, resource) => {
    expect(grpc.match('POST', path)?.resource).toBe(resource);
  });
  it('under a route of every path it is the whole path but its first slash: Service/Method', () => {
    const all = table([{ name: 'all', match: { path: '/**' }, action: 'grpc.call', resource: 'grpc:{**}', sensitivity: 'low' }]);
    expect(all.match('POST', '/orders.v1.Orders/Get')?.resource).toBe('grpc:orders.v1.Orders/Get');
  });
  it('is refused by config on a route whose path has no trailing /**', () => {
    expect(() => table([{ name: 'x', match: { path: '/a/{id}' }, action: 'a', resource: 'r:{**}', sensitivity: 'low' }])).toThrow(/is not captured by match.path/);
  });
});
