// Operating the process: SIGTERM drains in-flight requests and exits 0 with /readyz 503 first;
// SIGHUP and POST /admin/reload swap the config without losing a request; a broken reload
// changes nothing.
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { clientAgent, configYaml, createPki, DEFAULT_ROUTES, get, startProxy, startUpstream, type Issued, type Pki, type Upstream } from '../support/harness.ts';
import { startChildProxy } from '../support/child-proxy.ts';

async function admin(port: number, method: string, path: string, body?: unknown) {
  const response = await request(`http://127.0.0.1:${port}${path}`, { method: method as 'GET', body: body === undefined ? undefined : JSON.stringify(body), headers: method === 'POST' ? { 'content-type': 'application/json' } : undefined });
  return { status: response.statusCode, body: (await response.body.json()) as Record<string, unknown> };
}

describe('process lifecycle', () => {
  let pki: Pki;
  let upstream: Upstream;
  let client: Issued;

  beforeAll(async () => {
    pki = await createPki();
    upstream = await startUpstream((req, res) => {
      const delay = req.url === '/orders/slow' ? 2000 : 0;
      req.resume();
      setTimeout(() => res.end(`done ${req.url}`), delay);
    });
    client = await pki.ca.svid('/ns/prod/sa/web');
  });
  afterAll(async () => {
    await upstream.close();
    pki.cleanup();
  });

  it('SIGTERM: /readyz turns 503, a 2 s request in flight finishes, then the process exits 0', { timeout: 20_000 }, async () => {
    // upstream.timeout well above the request's 2 s, so only the drain is under test.
    const proxy = await startChildProxy(pki.write('sigterm.yaml', configYaml(pki, upstream.url, DEFAULT_ROUTES).replace('timeout: 2s', 'timeout: 5s')));
    const agent = clientAgent(pki.ca.bundlePem, client);
    expect((await admin(proxy.adminPort, 'GET', '/readyz')).status).toBe(200);
    const started = Date.now();
    const slow = get(agent, proxy.port, '/orders/slow');
    await new Promise((r) => setTimeout(r, 300));
    const exited = new Promise<number | null>((resolve) => proxy.child.once('exit', (code) => resolve(code)));
    proxy.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    const ready = await admin(proxy.adminPort, 'GET', '/readyz');
    expect(ready).toEqual({ status: 503, body: { status: 'not ready', reason: 'shutting down' } });
    const response = await slow;
    expect(response.status).toBe(200);
    expect(response.text).toBe('done /orders/slow');
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
    expect(await exited).toBe(0);
    // It exited once the request was done, not at the 10 s drain deadline.
    expect(Date.now() - started).toBeLessThan(5000);
    await agent.close();
  });

  it('SIGHUP reloads the config file; a broken file is refused and the old config keeps serving', { timeout: 20_000 }, async () => {
    const file = pki.write('sighup.yaml', configYaml(pki, upstream.url, DEFAULT_ROUTES));
    const proxy = await startChildProxy(file);
    const agent = clientAgent(pki.ca.bundlePem, client);
    try {
      expect((await get(agent, proxy.port, '/status')).status).toBe(403);
      writeFileSync(file, readFileSync(file, 'utf8').replace('routes:\n', 'routes:\n  - name: status\n    match: { path: /status }\n    privileged: false\n'));
      proxy.child.kill('SIGHUP');
      await expect.poll(async () => (await get(agent, proxy.port, '/status')).status, { timeout: 5000 }).toBe(200);
      writeFileSync(file, 'routes: [ this is not valid');
      proxy.child.kill('SIGHUP');
      await expect.poll(() => proxy.stderr(), { timeout: 5000 }).toContain('config reload refused');
      expect((await get(agent, proxy.port, '/status')).status).toBe(200);
    } finally {
      await agent.close();
      expect(await proxy.stop()).toBe(0);
    }
  });

  it('reload.watch picks up a changed config or policy file by itself; a broken one changes nothing', { timeout: 20_000 }, async () => {
    const yaml = configYaml(pki, upstream.url, DEFAULT_ROUTES) + 'reload: { watch: true, interval: 100ms }\n';
    const instance = await startProxy(pki, yaml);
    const agent = clientAgent(pki.ca.bundlePem, client);
    try {
      expect((await get(agent, instance.proxyPort, '/status')).status).toBe(403);
      pki.write('portcullis.yaml', yaml.replace('routes:\n', 'routes:\n  - name: status\n    match: { path: /status }\n    privileged: false\n'));
      await expect.poll(async () => (await get(agent, instance.proxyPort, '/status')).status, { timeout: 5000, interval: 100 }).toBe(200);
      const generation = instance.proxy.currentGeneration.id;
      pki.write('portcullis.yaml', 'routes: [ broken');
      await new Promise((r) => setTimeout(r, 500));
      expect(instance.proxy.currentGeneration.id).toBe(generation);
      expect((await get(agent, instance.proxyPort, '/status')).status).toBe(200);
      // A policy change alone is seen too.
      pki.write('portcullis.yaml', yaml);
      await expect.poll(() => instance.proxy.currentGeneration.id, { timeout: 5000, interval: 100 }).toBe(generation + 1);
      pki.write('policy.yaml', 'rules:\n  - { id: changed, effect: deny, actions: [x] }\n');
      await expect.poll(() => instance.proxy.currentGeneration.id, { timeout: 5000, interval: 100 }).toBe(generation + 2);
    } finally {
      await agent.close();
      await instance.close();
      pki.write('policy.yaml', 'rules: []\n');
    }
  });

  it('POST /admin/reload under continuous traffic loses no request', { timeout: 30_000 }, async () => {
    const instance = await startProxy(pki, configYaml(pki, upstream.url, DEFAULT_ROUTES));
    const agents = Array.from({ length: 4 }, () => clientAgent(pki.ca.bundlePem, client));
    let stop = false;
    const statuses = new Map<number, number>();
    const workers = agents.map(async (agent) => {
      while (!stop) {
        const { status } = await get(agent, instance.proxyPort, '/orders/1');
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      }
    });
    try {
      for (let i = 0; i < 10; i++) {
        await new Promise((r) => setTimeout(r, 50));
        const result = await admin(instance.adminPort, 'POST', '/admin/reload');
        expect(result.status).toBe(200);
        expect(result.body.generation).toBe(i + 2);
      }
      const broken = pki.write('portcullis.yaml', configYaml(pki, upstream.url, DEFAULT_ROUTES) + 'cache: { allowTtl: soon }\n');
      const refused = await admin(instance.adminPort, 'POST', '/admin/reload');
      expect(refused.status).toBe(400);
      expect(String(refused.body.error)).toContain('cache.allowTtl: expected a duration');
      expect(broken).toContain('portcullis.yaml');
      expect(instance.proxy.currentGeneration.id).toBe(11);
    } finally {
      stop = true;
      await Promise.all(workers);
      await Promise.all(agents.map((a) => a.close()));
      await instance.close();
    }
    expect([...statuses.keys()]).toEqual([200]);
    expect(statuses.get(200)).toBeGreaterThan(50);
  });
});
