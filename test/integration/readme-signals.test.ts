// README "Revoking a grant across the fleet" and "Shared Signals (CAEP) receiver", run as a user
// pastes them (issue 12, the README walk-through): the `signals` block added to the examples/
// config over a real `portcullis dev-pki`, the SET signed by the README's own `node -e` snippet
// and pushed by its curl line to a real receiver (202, the subject's grant then refused through
// a real mTLS request); the README's redis-cli XADD line against a real redis-server, applied by
// a real sidecar; and `portcullis revoke` printing what the README says it prints.
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInstance, type Instance } from '../../src/cli/instance.ts';
import { loadConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { memoryAuditLog } from '../../src/telemetry/audit.ts';
import { startRedis, type RedisServer } from '../support/redis-server.ts';
import { sleep } from './decision-support.ts';
import { runCommand, runPortcullis } from '../support/run-command.ts';

const exec = promisify(execFile);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const CLIENT = 'spiffe://example.org/ns/default/sa/my-client';

/** The one fenced block of `lang` that contains every one of `needles`. */
function block(lang: string, ...needles: string[]): string {
  const found = [...README.matchAll(new RegExp(`^( *)\`\`\`${lang}\\n([\\s\\S]*?)^\\1\`\`\``, 'gm'))]
    .map((m) => m[2]!.replace(new RegExp(`^${m[1]!}`, 'gm'), ''))
    .filter((b) => needles.every((n) => b.includes(n)));
  expect(found.length, `one README ${lang} block with ${needles.join(', ')}`).toBe(1);
  return found[0]!;
}

const portcullis = (...args: string[]) => runPortcullis(args, { timeout: 15_000 });

/** Runs a README shell block with bash from the clone's root (where `jose` resolves). */
const sh = (script: string) => runCommand('bash', ['-euo', 'pipefail', '-c', script], { cwd: ROOT, timeout: 20_000 });

describe('the README\'s revocation and Shared Signals walk-through', () => {
  let dir: string;
  let service: Server;
  let servicePort: number;
  let redis: RedisServer;
  const running: Instance[] = [];

  /** The example config as shipped, on free ports, with `extra` appended, run in-process. */
  async function sidecar(name: string, extra: string): Promise<Instance> {
    const example = readFileSync(join(dir, 'portcullis.yaml'), 'utf8');
    const config = `${example.replace('http://127.0.0.1:8080', `http://127.0.0.1:${servicePort}`).replace('port: 8443', 'port: 0').replace('port: 9901', 'port: 0')}\n${extra}`;
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, config);
    const instance = await startInstance(loadConfig(file), { logger: createLogger('silent'), svidPollMs: 60_000, configFile: file, audit: memoryAuditLog() });
    running.push(instance);
    return instance;
  }

  /** Step 4 of "Your own service in ten minutes": a grant for my-client, then curl with its SVID. */
  async function call(instance: Instance, jti: string): Promise<string> {
    const minted = await portcullis('grant', 'mint', '--key', join(dir, 'pki/grant-issuer_key.pem'), '--kid', 'grant-1', '--iss', 'https://grants.example.org', '--sub', CLIENT, '--aud', 'spiffe://example.org/ns/default/sa/my-service', '--scope', 'my-service.call', '--ttl', '10m', '--jti', jti);
    expect(minted.code, minted.stderr).toBe(0);
    const reply = await exec('curl', ['-sS', '-w', '%{http_code}', '--cacert', join(dir, 'pki/bundle.pem'), '--cert', join(dir, 'pki/my-client.pem'), '--key', join(dir, 'pki/my-client_key.pem'), '-H', `x-jit-grant: ${minted.stdout.trim()}`, `https://localhost:${instance.proxyPort}/hello`]);
    return reply.stdout;
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-readme-signals-'));
    copyFileSync(join(ROOT, 'examples/portcullis.yaml'), join(dir, 'portcullis.yaml'));
    copyFileSync(join(ROOT, 'examples/policy.yaml'), join(dir, 'policy.yaml'));
    const made = await portcullis('dev-pki', '--out', join(dir, 'pki'), '--trust-domain', 'example.org', '--workload', 'my-service', '--workload', 'my-client');
    expect(made.code, made.stderr).toBe(0);
    service = createServer((_req, res) => res.end('hello from my service\n'));
    await new Promise<void>((resolve) => service.listen(0, '127.0.0.1', resolve));
    servicePort = (service.address() as { port: number }).port;
    redis = await startRedis();
  });
  afterAll(async () => {
    for (const instance of running) await instance.close();
    await new Promise((resolve) => service?.close(resolve));
    await redis?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the README\'s signals block, SET snippet and curl line: 202, and my-client\'s grant is refused from the next request on', { timeout: 60_000 }, async () => {
    const yaml = block('yaml', 'signals:', 'jwksFile: pki/posture-issuer-jwks.json');
    expect(yaml).toContain('address: 127.0.0.1, port: 9902');
    const instance = await sidecar('signals', yaml.replace('port: 9902', 'port: 0'));
    expect(await call(instance, 'before-set')).toBe('hello from my service\n200');

    const script = block('sh', 'SignJWT', 'secevent+jwt');
    // The block as written, but for where this test's PKI and receiver are.
    const run = script.replaceAll('examples/pki/', `${dir}/pki/`).replaceAll('127.0.0.1:9902', `127.0.0.1:${instance.signalsPort}`);
    expect(run).not.toBe(script);
    const pushed = await sh(run);
    expect([pushed.code, pushed.stderr]).toEqual([0, '']);
    expect(pushed.stdout).toBe('→ HTTP 202\n');
    expect(instance.shared.revocations.holds('sub', CLIENT)).toBe(true);
    expect(await call(instance, 'after-set')).toMatch(/"reason":"grant_revoked"[\s\S]*403$/);
    // Sent again: the same SET is a replay (the README says to sign a new one).
    const curl = script.slice(script.search(/^curl /m)).replaceAll('127.0.0.1:9902', `127.0.0.1:${instance.signalsPort}`);
    const twice = await sh(`${run}\n${curl}`);
    expect(twice.stdout).toMatch(/^→ HTTP 202\n\{"err":"invalid_request","description":"jti \\"[^"\\]+\\" of https:\/\/idp\.example\.org was already received"\}→ HTTP 400\n$/);
  });

  it('the README\'s redis-cli XADD line (MINID before \'*\') is taken by Redis and applied by a sidecar; `portcullis revoke` prints what the README says', { timeout: 60_000 }, async () => {
    const instance = await sidecar('bus', `revocation: { source: redis, url: "${redis.url}", stream: portcullis:revocations }\n`);
    const deadline = Date.now() + 10_000;
    while (!(instance.bus?.describe() as { fresh?: boolean } | undefined)?.fresh) {
      if (Date.now() > deadline) throw new Error('the sidecar never read the stream');
      await sleep(20);
    }
    const line = block('sh', 'redis-cli', 'XADD');
    const url = 'redis://portcullis:PASSWORD@redis.prod.svc:6379';
    expect(line).toContain(url);
    expect(line).toMatch(/XADD portcullis:revocations \\\n\s+MINID '~' .+ '\*' jti 7f3a/);
    const added = await sh(line.replace(url, redis.url));
    expect([added.code, added.stderr]).toEqual([0, '']);
    const id = added.stdout.trim();
    expect(id).toMatch(/^\d{13}-\d+$/);
    // The MINID the line computes: retain (24h) before now, in ms, as publish and `revoke` use.
    const expression = /MINID '~' (\$\(\(.*\)\)) '\*'/.exec(line)![1]!;
    const minid = Number((await sh(`echo ${expression}`)).stdout.trim());
    expect(Math.abs(minid - (Date.now() - 24 * 3600 * 1000))).toBeLessThan(5_000);
    const applied = Date.now() + 5_000;
    while (!instance.shared.revocations.holds('jti', '7f3a')) {
      if (Date.now() > applied) throw new Error('the redis-cli entry was not applied');
      await sleep(10);
    }

    const revoked = await portcullis('revoke', '--config', join(dir, 'bus.yaml'), '--jti', '7f3a', '--reason', 'task-done');
    expect([revoked.code, revoked.stderr]).toEqual([0, '']);
    const sample = /and prints `(revoked jti 7f3a: [^`]+)`/.exec(README)![1]!.replace(/\s+/g, ' ');
    const printed = revoked.stdout.trim().replace(/entry \d+-\d+/, 'entry 1764624000000-0').replace(redis.url, 'redis://portcullis@redis.prod.svc:6379/0');
    expect(printed).toBe(sample);
  });
});
