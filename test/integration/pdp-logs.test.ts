// A dead PDP is findable in the sidecar's log (issue 10 section 4: the alert says "check the
// sidecar logs"): a real proxy whose AuthZEN PDP refuses connections writes a warn line per kind
// of failure (rate-limited) and one when the circuit opens, naming no token or secret.
import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from 'undici';
import { loadConfig } from '../../src/config/load.ts';
import { startInstance, type Instance } from '../../src/cli/instance.ts';
import { memoryAuditLog } from '../../src/telemetry/audit.ts';
import { clientAgent, configYaml, createPki, get, startUpstream, type Pki, type Upstream } from '../support/harness.ts';
import { grantClaims, issuerKey, JIT_ISS, signToken, sleep, type IssuerKey } from './decision-support.ts';

interface Line {
  level: number;
  msg: string;
  [key: string]: unknown;
}

async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return typeof address === 'object' && address ? address.port : 0;
}

describe('PDP failures reach the log', () => {
  let pki: Pki;
  let upstream: Upstream;
  let agent: Agent;
  let jit: IssuerKey;
  let proxy: Instance;
  const raw: string[] = [];
  const lines: Line[] = [];

  beforeAll(async () => {
    pki = await createPki();
    upstream = await startUpstream();
    jit = await issuerKey('jit-1');
    pki.write('jit-jwks.json', jit.jwks);
    const routes = `routes:
  - name: refund
    match: { methods: [POST], path: "/orders/{id}/refund" }
    action: orders.refund
    resource: "order:{id}"
    sensitivity: high
grants: { issuers: [{ issuer: "${JIT_ISS}", jwksFile: jit-jwks.json }] }
`;
    const yaml = configYaml(pki, upstream.url, routes).replace('pdp: { policyFile: policy.yaml }', `pdp: { kind: authzen, url: "http://127.0.0.1:${await deadPort()}", timeout: 250ms }`);
    const file = pki.write('portcullis.yaml', yaml);
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const text of chunk.toString('utf8').split('\n')) {
          if (!text) continue;
          raw.push(text);
          lines.push(JSON.parse(text) as Line);
        }
        done();
      },
    });
    const logger = pino({ level: 'info', base: undefined }, stream);
    proxy = await startInstance(loadConfig(file), { logger, svidPollMs: 60_000, configFile: file, audit: memoryAuditLog() });
    agent = clientAgent(pki.ca.bundlePem, await pki.ca.svid('/ns/prod/sa/support-bot'));
  });
  afterAll(async () => {
    await agent.close();
    await proxy.close();
    await upstream.close();
    pki.cleanup();
  });

  it('logs the failure at warn, once per kind while it lasts, then the circuit opening; never a token', async () => {
    const tokens: string[] = [];
    for (let i = 0; i < 8; i++) {
      const token = await signToken(grantClaims(), { key: jit.key, kid: jit.kid });
      tokens.push(token);
      const reply = await get(agent, proxy.proxyPort, `/orders/${i}/refund`, { method: 'POST', headers: { 'x-jit-grant': token } });
      expect(reply.status).toBe(503);
    }
    await sleep(20);
    const failures = lines.filter((l) => l.msg.startsWith('PDP call failed'));
    // Connection refused first (one line), then fast failures of the open circuit (one more line).
    expect(failures.map((l) => [l.level, l.outcome])).toEqual([
      [40, 'error'],
      [40, 'circuit_open'],
    ]);
    expect(failures[0]).toMatchObject({ pdp: 'authzen', route: 'refund', suppressed: 0, request_id: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    expect(String(failures[0]!.detail)).toContain('ECONNREFUSED');
    expect(lines.filter((l) => l.circuit === 'open').map((l) => [l.level, l.pdp])).toEqual([[40, 'authzen']]);
    const everything = raw.join('\n');
    for (const token of tokens) {
      expect(everything).not.toContain(token);
      expect(everything).not.toContain(token.slice(token.lastIndexOf('.') + 1));
      expect(everything).not.toContain(token.split('.')[1]!);
    }
  });
});
