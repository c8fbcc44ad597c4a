// The command line as a user runs it: check, svid inspect, and the demo's printed curl lines.
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { x509 } from '../../src/cli/dev-pki.ts';
import { configYaml, createPki, DEFAULT_ROUTES, DevCa, type Pki } from '../support/harness.ts';
import { MAIN } from '../support/child-proxy.ts';
import { runCommand, runPortcullis } from '../support/run-command.ts';

const exec = promisify(execFile);

/** A pasted command line, whatever its exit code (curl exits 18 or 92 when a stream is cut). */
const shell = (command: string) => runCommand('bash', ['-c', command], { timeout: 20_000 });

const portcullis = (...args: string[]) => runPortcullis(args);

describe('portcullis check', () => {
  let pki: Pki;
  beforeAll(async () => {
    pki = await createPki();
  });
  afterAll(() => pki.cleanup());

  it('accepts a good config and its identity files', async () => {
    const file = pki.write('good.yaml', configYaml(pki, 'http://127.0.0.1:1', DEFAULT_ROUTES));
    const result = await portcullis('check', '--config', file);
    expect(result).toMatchObject({ code: 0 });
    expect(result.stdout).toContain('ok');
  });

  it('lists each problem with file, key path and line, and exits 1', async () => {
    const yaml = configYaml(pki, 'http://127.0.0.1:1', DEFAULT_ROUTES).replace('admin: { address: 127.0.0.1, port: 0 }', 'admin: { address: 127.0.0.1, port: 0 }\ncache: { allowTtl: soon }\nbogus: 1');
    const file = pki.write('bad.yaml', yaml);
    const result = await portcullis('check', '--config', file);
    expect(result.code).toBe(1);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toContain(`${file}:${yaml.split('\n').findIndex((l) => l.startsWith('cache:')) + 1}: cache.allowTtl: expected a duration like "30s", got "soon"`);
    expect(lines.some((l) => l.includes(': bogus: unknown key'))).toBe(true);
  });

  it('names the identity file whose key does not match its certificate', async () => {
    const other = await pki.ca.svid('/ns/prod/sa/other');
    pki.write('wrong_key.pem', other.keyPem);
    const file = pki.write('mismatch.yaml', configYaml(pki, 'http://127.0.0.1:1').replace('keyFile: svid_key.pem', 'keyFile: wrong_key.pem'));
    const result = await portcullis('check', '--config', file);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/identity\.keyFile: .*key does not match the certificate/);
  });

  it('refuses a missing file and a missing --config', async () => {
    expect((await portcullis('check', '--config', `${pki.dir}/nope.yaml`)).stderr).toContain('cannot read: ENOENT');
    const usage = await portcullis('check');
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('--config FILE is required');
  });
});

describe('portcullis svid inspect', () => {
  let pki: Pki;
  beforeAll(async () => {
    pki = await createPki();
  });
  afterAll(() => pki.cleanup());

  it('prints the SPIFFE ID, expiry and chain, and verifies against a bundle', async () => {
    const svid = await pki.ca.svid('/ns/prod/sa/web');
    const file = pki.write('web.pem', svid.certPem);
    const result = await portcullis('svid', 'inspect', file, '--bundle', `${pki.dir}/bundle.pem`, '--trust-domain', 'example.org');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('spiffe_id: spiffe://example.org/ns/prod/sa/web');
    expect(result.stdout).toContain(`expires: ${svid.cert.notAfter.toISOString()}`);
    expect(result.stdout).toContain('verified: chains to');
  });

  it('exits 1 naming the rule a CA leaf, two URI SANs, an expired leaf, or another bundle break', async () => {
    const cases: [string, Promise<{ certPem: string }>, RegExp][] = [
      ['ca.pem', pki.ca.svid('/ns/x', { ca: true, keyUsages: x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.digitalSignature }), /leaf_is_ca/],
      ['two.pem', pki.ca.svid('/ns/x', { uris: ['spiffe://example.org/a', 'spiffe://example.org/b'] }), /uri_san_count/],
      ['expired.pem', pki.ca.svid('/ns/x', { notBefore: new Date(Date.now() - 7200_000), notAfter: new Date(Date.now() - 3600_000) }), /expired/],
    ];
    for (const [name, issued, rule] of cases) {
      const result = await portcullis('svid', 'inspect', pki.write(name, (await issued).certPem), '--bundle', `${pki.dir}/bundle.pem`, '--trust-domain', 'example.org');
      expect(result.code, name).toBe(1);
      expect(result.stderr, name).toMatch(rule);
    }
    const stranger = await (await DevCa.create('example.org')).svid('/ns/x');
    const foreign = await portcullis('svid', 'inspect', pki.write('foreign.pem', stranger.certPem), '--bundle', `${pki.dir}/bundle.pem`, '--trust-domain', 'example.org');
    expect(foreign.code).toBe(1);
    expect(foreign.stderr).toMatch(/untrusted_chain/);
    const garbage = await portcullis('svid', 'inspect', pki.write('garbage.pem', 'not a certificate'));
    expect(garbage.code).toBe(1);
    expect(garbage.stderr).toContain('no PEM certificate found');
  });

  it('refuses a leaf whose SPIFFE ID is a bare trust domain (root path), with or without a bundle', async () => {
    const file = pki.write('root-path.pem', (await pki.ca.svid('')).certPem);
    for (const extra of [[], ['--bundle', `${pki.dir}/bundle.pem`, '--trust-domain', 'example.org']]) {
      const result = await portcullis('svid', 'inspect', file, ...extra);
      expect(result.code, extra.join(' ')).toBe(1);
      expect(result.stderr).toMatch(/invalid \(bad_spiffe_id\): .*non-root path/);
    }
  });

  it('without --bundle still checks the presented chain: CA flag, keyCertSign, issuer order, validity', async () => {
    const notCa = await pki.ca.intermediate({ ca: false, subject: 'CN=not a CA' });
    const noSign = await pki.ca.intermediate({ keyUsages: x509.KeyUsageFlags.cRLSign, subject: 'CN=no keyCertSign' });
    const expired = await pki.ca.intermediate({ notBefore: new Date(Date.now() - 7200_000), notAfter: new Date(Date.now() - 3600_000), subject: 'CN=expired' });
    const good = await pki.ca.intermediate({ subject: 'CN=good' });
    const other = await pki.ca.intermediate({ subject: 'CN=other' });
    const cases: [string, string, RegExp][] = [
      ['not-ca.pem', (await pki.ca.svid('/ns/x', {}, notCa)).certPem + notCa.certPem, /invalid \(untrusted_chain\): chain\[1\]: signing certificate must have CA flag set/],
      ['no-sign.pem', (await pki.ca.svid('/ns/x', {}, noSign)).certPem + noSign.certPem, /invalid \(key_usage\): chain\[1\]: signing certificate must have 'keyCertSign' set as key usage/],
      ['expired-ca.pem', (await pki.ca.svid('/ns/x', {}, expired)).certPem + expired.certPem, /invalid \(expired\): chain\[1\] expired/],
      // good was signed by the root, not by other: each certificate must be issued by the next.
      ['order.pem', (await pki.ca.svid('/ns/x', {}, good)).certPem + good.certPem + other.certPem, /invalid \(untrusted_chain\): chain\[1\] is not issued by chain\[2\]/],
      ['unlinked.pem', (await pki.ca.svid('/ns/x')).certPem + good.certPem, /invalid \(untrusted_chain\): leaf is not issued by chain\[1\]/],
    ];
    for (const [name, pem, rule] of cases) {
      const result = await portcullis('svid', 'inspect', pki.write(name, pem));
      expect(result.code, name).toBe(1);
      expect(result.stderr, name).toMatch(rule);
    }
    const fine = await portcullis('svid', 'inspect', pki.write('fine.pem', (await pki.ca.svid('/ns/x', {}, good)).certPem + good.certPem));
    expect([fine.code, fine.stdout]).toEqual([0, expect.stringContaining('spiffe_id: spiffe://example.org/ns/x')]);
  });

  it('prints "(empty)" for an empty Subject instead of crashing', async () => {
    const file = pki.write('empty-subject.pem', (await pki.ca.svid('/ns/prod/sa/web', { subject: '' })).certPem);
    const result = await portcullis('svid', 'inspect', file);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^leaf: subject \(empty\); issuer CN=example\.org dev CA, O=Portcullis; valid /m);
  });

  it('with --bundle, takes the trust domain from --trust-domain or the bundle CA, and refuses a leaf of another domain', async () => {
    // A SPIFFE CA names its trust domain in a URI SAN; the harness's dev CA does not.
    const spiffeCa = await DevCa.create('example.org', { uris: ['spiffe://example.org'] });
    const partner = await DevCa.create('partner.org', { uris: ['spiffe://partner.org'] });
    const bundle = pki.write('spiffe-bundle.pem', spiffeCa.bundlePem);
    const partnerBundle = pki.write('partner-bundle.pem', partner.bundlePem);
    const web = pki.write('spiffe-web.pem', (await spiffeCa.svid('/ns/prod/sa/web')).certPem);
    const named = await portcullis('svid', 'inspect', web, '--bundle', bundle);
    expect([named.code, named.stdout]).toEqual([0, expect.stringContaining(`verified: chains to ${bundle} as the bundle of example.org`)]);
    // partner.org's CA signing an example.org ID: the file is partner.org's bundle, not example.org's.
    const forged = pki.write('forged.pem', (await partner.svid('', { uris: ['spiffe://example.org/ns/prod/sa/web'] })).certPem);
    const cross = await portcullis('svid', 'inspect', forged, '--bundle', partnerBundle);
    expect(cross.code).toBe(1);
    expect(cross.stderr).toMatch(/invalid \(unknown_trust_domain\): .*example\.org.*partner\.org/);
    const told = await portcullis('svid', 'inspect', forged, '--bundle', partnerBundle, '--trust-domain', 'partner.org');
    expect(told.code).toBe(1);
    expect(told.stderr).toMatch(/invalid \(unknown_trust_domain\): .*example\.org.*partner\.org/);
    // A CA that names no trust domain, and no --trust-domain: a usage error.
    const unnamed = await portcullis('svid', 'inspect', web, '--bundle', `${pki.dir}/bundle.pem`);
    expect(unnamed.code).toBe(2);
    expect(unnamed.stderr).toContain('pass --trust-domain');
    const bad = await portcullis('svid', 'inspect', web, '--bundle', bundle, '--trust-domain', 'Example.org');
    expect([bad.code, bad.stderr]).toEqual([2, expect.stringContaining('--trust-domain')]);
  });
});

describe('portcullis grant mint and posture mint', () => {
  let pki: Pki;
  beforeAll(async () => {
    pki = await createPki();
  });
  afterAll(() => pki.cleanup());

  it('mints a grant that verifies, and refuses a --sub that is not a SPIFFE ID or a bad --trust', async () => {
    const key = pki.write('issuer_key.pem', pki.server.keyPem);
    const ok = await portcullis('grant', 'mint', '--key', key, '--iss', 'https://jit.example.org', '--sub', 'spiffe://example.org/ns/prod/sa/web', '--aud', 'spiffe://example.org/ns/prod/sa/orders-api', '--scope', 'orders.refund', '--ttl', '5m', '--resources', 'order:1,order:2');
    expect(ok.code).toBe(0);
    const [header, payload] = ok.stdout.trim().split('.');
    expect(JSON.parse(Buffer.from(header!, 'base64url').toString())).toMatchObject({ alg: 'ES256' });
    expect(JSON.parse(Buffer.from(payload!, 'base64url').toString())).toMatchObject({ sub: 'spiffe://example.org/ns/prod/sa/web', scope: 'orders.refund', resources: ['order:1', 'order:2'] });
    const badSub = await portcullis('grant', 'mint', '--key', key, '--iss', 'x', '--sub', 'support-bot', '--aud', 'y', '--scope', 'a', '--ttl', '5m');
    expect([badSub.code, badSub.stderr]).toEqual([2, expect.stringContaining('--sub: expected a SPIFFE ID')]);
    const missing = await portcullis('grant', 'mint', '--key', key);
    expect([missing.code, missing.stderr]).toEqual([2, expect.stringContaining('--iss is required')]);
    const badTrust = await portcullis('posture', 'mint', '--key', key, '--iss', 'x', '--sub', 'spiffe://example.org/a', '--trust', 'super', '--ttl', '5m');
    expect([badTrust.code, badTrust.stderr]).toEqual([2, expect.stringContaining('--trust must be low, medium or high')]);
  });
});

describe('portcullis demo', () => {
  it('falls back to a free port when the preferred one is taken', async () => {
    const { createServer } = await import('node:net');
    const { freePort } = await import('../../src/cli/demo.ts');
    const hold = createServer();
    await new Promise<void>((resolve) => hold.listen(0, '127.0.0.1', resolve));
    const taken = (hold.address() as { port: number }).port;
    try {
      const port = await Promise.race([freePort(taken), new Promise<never>((_, reject) => setTimeout(() => reject(new Error('freePort hung')), 3000))]);
      expect(port).not.toBe(taken);
      expect(port).toBeGreaterThan(0);
    } finally {
      hold.close();
    }
  });

  it('prints curl commands that work when pasted', { timeout: 60_000 }, async () => {
    const child = spawn(process.execPath, [MAIN, 'demo'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '';
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`demo did not print its commands:\n${out}`)), 20_000);
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
          out += chunk;
          if (out.includes('Press Ctrl-C')) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      const commands = out.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('curl ') || l.startsWith('G='));
      const demoDir = /--cacert (\S+)\/bundle\.pem/.exec(commands[0]!)![1]!;
      // In the order the demo prints them: [status, reason] (reason '' for a service answer).
      const expected: [string, string][] = [
        ['200', ''], ['403', 'peer_not_allowed'], ['000', ''], ['000', ''], ['400', 'bad_path'], ['403', 'no_route'],
        ['200', ''], ['401', 'grant_required'], ['401', 'grant_invalid'], ['403', 'grant_subject_mismatch'], ['403', 'policy_denied'],
        ['403', 'grant_scope'], ['403', 'grant_ttl_too_long'], ['401', 'posture_required'], ['403', 'posture_insufficient'],
        ['200', ''], ['200', ''], ['403', 'grant_revoked'],
      ];
      // Then the expiring-grant loop, two HTTP/2 lines, two server-sent-events streams, and the
      // MCP lines (initialize, initialized, an allowed and a denied tools/call, a batch).
      expect(commands).toHaveLength(expected.length + 10);
      const [expiryLoop, h2Allowed, h2Denied, sseHttp1, sseH2] = commands.slice(expected.length, expected.length + 5) as [string, string, string, string, string];
      const [mcpInitialize, mcpInitialized, mcpAllowed, mcpDenied, mcpBatch] = commands.slice(expected.length + 5) as [string, string, string, string, string];
      expect([h2Allowed, h2Denied].every((c) => c.startsWith('curl --http2 '))).toBe(true);
      expect(sseHttp1).toContain('curl --http1.1 ');
      expect(sseH2).toContain('curl --http2 ');
      // The ones that take seconds run side by side, each timed from the moment it is pasted.
      const timed = (command: string) => {
        const started = performance.now();
        return shell(command).then((result) => ({ ...result, seconds: (performance.now() - started) / 1000 }));
      };
      const slow = Promise.all([timed(expiryLoop), timed(sseHttp1), timed(sseH2)]);
      for (const [index, [status, reason]] of expected.entries()) {
        const { stdout } = await exec('bash', ['-c', `${commands[index]} -w '\\n%{http_code}' || true`]);
        const lines = stdout.trimEnd().split('\n');
        const body = lines.slice(0, -1).join('\n');
        expect([index, lines.at(-1)], commands[index]).toEqual([index, status]);
        if (reason) expect(JSON.parse(body).reason, commands[index]).toBe(reason);
        if (index === 0) expect(body).toContain('URI=spiffe://example.org/ns/prod/sa/support-bot');
        if (index === 6) expect(body).toContain('x-jit-grant-id');
      }
      // HTTP/2 on the same port, run exactly as printed: the status line names the protocol.
      const allowed = await shell(h2Allowed);
      expect(allowed.stdout.trimEnd().split('\n').at(-1), h2Allowed).toBe('→ HTTP 2 200');
      expect(allowed.stdout).toContain('URI=spiffe://example.org/ns/prod/sa/support-bot');
      // upstream.protocol: http1: the service is spoken to in HTTP/1.1.
      expect(allowed.stdout).toContain('"http_version": "1.1"');
      const denied = await shell(h2Denied);
      const deniedLines = denied.stdout.trimEnd().split('\n');
      expect(deniedLines.at(-1), h2Denied).toBe('→ HTTP 2 403');
      expect(JSON.parse(deniedLines.slice(0, -1).join('\n')).reason).toBe('policy_denied');

      // MCP through the real SDK server, run exactly as printed, in order (one session). Each
      // prints its answer and then "→ HTTP <status>".
      const answer = (out: string) => {
        const lines = out.trimEnd().split('\n');
        return { status: lines.at(-1), body: lines.slice(0, -1).join('\n').trim() };
      };
      // initialize: the answer with its headers (-D -), and the session header kept in a file.
      const opened = await shell(mcpInitialize);
      expect([opened.code, answer(opened.stdout).status], opened.stdout + opened.stderr).toEqual([0, '→ HTTP 200']);
      expect(opened.stdout).toMatch(/^content-type: text\/event-stream/im);
      expect(opened.stdout).toContain('"serverInfo":{"name":"orders"');
      const session = readFileSync(`${demoDir}/mcp-session.header`, 'utf8');
      expect(session).toMatch(/^mcp-session-id: [0-9a-f-]{36}\n$/i);
      expect(opened.stdout).toContain(session.trim());
      expect(answer((await shell(mcpInitialized)).stdout)).toEqual({ status: '→ HTTP 202', body: '' });
      // The allowed call reaches the server and comes back as a server-sent event.
      const looked = answer((await shell(mcpAllowed)).stdout);
      expect(looked.status, mcpAllowed).toBe('→ HTTP 200');
      const event = JSON.parse(/^data: (.*)$/m.exec(looked.body)![1]!) as { id: number; result: { content: { text: string }[] } };
      expect([event.id, event.result.content[0]!.text]).toEqual([2, 'order 42: 2 items, 59.90 EUR, paid']);
      // refund_order: refused by the grant, with the JSON-RPC error body carrying the call's id.
      const refused = answer((await shell(mcpDenied)).stdout);
      expect(refused.status, mcpDenied).toBe('→ HTTP 403');
      expect(JSON.parse(refused.body)).toEqual({ jsonrpc: '2.0', id: 3, error: { code: -32001, message: 'grant_scope', data: { reason: 'grant_scope', request_id: expect.any(String) } } });
      // The batch is refused whole: one error object, for the refund call only.
      const batch = answer((await shell(mcpBatch)).stdout);
      expect(batch.status, mcpBatch).toBe('→ HTTP 403');
      expect((JSON.parse(batch.body) as { id: number; error: { message: string } }[]).map((e) => [e.id, e.error.message])).toEqual([[5, 'grant_scope']]);

      const [loop, ...streams] = await slow;
      // The server-sent events: events arrive, then the grant's 5 s end the stream (the grant is
      // minted by the same line, so the whole line takes the mint, which is slow on a busy machine,
      // plus 5 s plus the cut's lateness).
      for (const [stream, version, curlError] of [[streams[0]!, '1.1', 18], [streams[1]!, '2', 92]] as const) {
        const events = stream.stdout.split('\n').filter((l) => l.startsWith('data: order 42 refund: event '));
        expect(events.length, stream.stdout).toBeGreaterThanOrEqual(5);
        const ended = /→ HTTP (\S+) (\d{3}), stream ended after ([\d.]+) s$/.exec(stream.stdout.trimEnd());
        expect(ended, stream.stdout).not.toBeNull();
        expect([ended![1], ended![2]]).toEqual([version, '200']);
        // curl starts after the mint, so its own clock reads under the grant's 5 s plus the cut's lateness.
        expect(Number(ended![3])).toBeLessThan(5.5);
        expect(stream.seconds).toBeGreaterThan(4);
        expect(stream.seconds).toBeLessThan(15);
        // Not a clean end: HTTP/1.1 without the final chunk, HTTP/2 reset with CANCEL.
        expect([stream.code, stream.stderr]).toEqual([curlError, expect.stringContaining(curlError === 92 ? 'CANCEL' : 'transfer closed')]);
      }
      // Both cuts are audited with their request ids (the audit log is written every 100 ms).
      await new Promise((resolve) => setTimeout(resolve, 300));
      const cuts = readFileSync(`${demoDir}/audit.log`, 'utf8').split('\n').filter((l) => l.includes('"event":"stream_cut"')).map((l) => JSON.parse(l) as Record<string, string>);
      expect(cuts.filter((c) => c.route === 'refund-events').map((c) => [c.route, c.reason, c.protocol]).sort()).toEqual([['refund-events', 'grant_expired', 'h2'], ['refund-events', 'grant_expired', 'http1']]);
      // The expiring-grant loop can have a request in flight at its grant's exp (admitted a few ms
      // before, on a busy machine): that one is cut too, and audited, as SPEC "Streams" says.
      for (const other of cuts.filter((c) => c.route !== 'refund-events')) expect([other.route, other.reason]).toEqual(['refund', 'grant_expired']);
      // Each MCP call was its own decision, audited with the call (the batch: both of its calls).
      const calls = readFileSync(`${demoDir}/audit.log`, 'utf8').split('\n').filter((l) => l.includes('"route":"mcp"')).map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(calls.map((c) => [c.rpc_method, c.rpc_name, c.rpc_id, c.action, c.resource, c.decision, c.reason])).toEqual([
        ['initialize', '-', 1, 'mcp.initialize', 'mcp:-', 'allow', 'allowed'],
        ['notifications/initialized', '-', null, 'mcp.notifications.initialized', 'mcp:-', 'allow', 'allowed'],
        ['tools/call', 'lookup_order', 2, 'mcp.tools.call', 'mcp:lookup_order', 'allow', 'allowed'],
        ['tools/call', 'refund_order', 3, 'mcp.tools.call', 'mcp:refund_order', 'deny', 'grant_scope'],
        ['tools/call', 'lookup_order', 4, 'mcp.tools.call', 'mcp:lookup_order', 'allow', 'allowed'],
        ['tools/call', 'refund_order', 5, 'mcp.tools.call', 'mcp:refund_order', 'deny', 'grant_scope'],
      ]);

      // The expiring grant: allowed at first, then 401 once its 5 s are up.
      const seen = loop.stdout.trim().split(/\s+/);
      expect(seen[0]).toBe('200');
      expect(seen.at(-1)).toBe('401');
      expect(seen.indexOf('401')).toBeGreaterThanOrEqual(4);
      // Ctrl-C right after privileged requests (audit lines still being written): the demo stops
      // promptly and removes its folder, private keys included.
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      await exec('bash', ['-c', `${commands[6]} >/dev/null; kill -INT ${child.pid}`]);
      const code = await Promise.race([exited, new Promise<string>((resolve) => setTimeout(() => resolve('still running'), 5000))]);
      expect(code).not.toBe('still running');
      expect(existsSync(demoDir)).toBe(false);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
