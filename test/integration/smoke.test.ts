import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientAgent, configYaml, createPki, DEFAULT_ROUTES, get, startProxy, startUpstream, type Pki, type Upstream } from '../support/harness.ts';
import type { Instance } from '../../src/cli/instance.ts';

describe('smoke', () => {
  let pki: Pki;
  let upstream: Upstream;
  let proxy: Instance;
  beforeAll(async () => {
    pki = await createPki();
    upstream = await startUpstream();
    proxy = await startProxy(pki, configYaml(pki, upstream.url, DEFAULT_ROUTES));
  });
  afterAll(async () => {
    await proxy.close();
    await upstream.close();
    pki.cleanup();
  });
  it('forwards an allowed peer with XFCC', async () => {
    const client = await pki.ca.svid('/ns/prod/sa/web');
    const agent = clientAgent(pki.ca.bundlePem, client);
    const res = await get(agent, proxy.proxyPort, '/orders/1');
    expect(res.status).toBe(200);
    expect((res.json().headers as Record<string, string>)['x-forwarded-client-cert']).toContain('URI=spiffe://example.org/ns/prod/sa/web');
    await agent.close();
  });
});
