// SVID and bundle rotation under live traffic, refused half-written files, and TLS session
// resumption across a bundle change. Real files, real TLS, the harness polls every 100 ms.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { clientAgent, configYaml, createPki, DEFAULT_ROUTES, DevCa, get, SERVER_ID, startProxy, startUpstream, type Issued, type Pki, type Upstream } from '../support/harness.ts';
import type { Instance } from '../../src/cli/instance.ts';
import { derSha256Hex, failureSample, fingerprintOf, metric, replaceFile, tlsExchange, waitFor } from './identity-support.ts';

const HOUR = 3_600_000;
const OWN_ID = `spiffe://example.org${SERVER_ID}`;

interface Running {
  readonly pki: Pki;
  readonly upstream: Upstream;
  readonly proxy: Instance;
}

const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function start(): Promise<Running> {
  const pki = await createPki();
  cleanups.push(() => pki.cleanup());
  const upstream = await startUpstream();
  cleanups.push(() => upstream.close());
  const proxy = await startProxy(pki, configYaml(pki, upstream.url, DEFAULT_ROUTES), { svidPollMs: 100 });
  cleanups.push(() => proxy.close());
  return { pki, upstream, proxy };
}

/** A notAfter on a whole second, so the expiry gauge can be compared exactly. */
function wholeSecondsFromNow(ms: number): Date {
  return new Date(Math.floor((Date.now() + ms) / 1000) * 1000);
}

/** Writes the key, then the cert, in place (not atomically), the way spiffe-helper does. */
function writeSvid(pki: Pki, svid: Issued): void {
  writeFileSync(join(pki.dir, 'svid_key.pem'), svid.keyPem);
  writeFileSync(join(pki.dir, 'svid.pem'), svid.certPem);
}

async function serverFingerprint(port: number, ca: string, client: Issued): Promise<string | undefined> {
  return (await tlsExchange(port, { ca, client, handshakeOnly: true })).serverFingerprint;
}

function countHandshakes(proxy: Instance): { readonly count: number; stop(): void } {
  const counter = { count: 0, stop: () => proxy.proxy.server.off('secureConnection', onSecure) };
  const onSecure = () => counter.count++;
  proxy.proxy.server.on('secureConnection', onSecure);
  return counter;
}

describe('server SVID rotation', () => {
  it('serves the new SVID to new connections while a keep-alive connection carries on', async () => {
    const { pki, proxy, upstream } = await start();
    const client = await pki.ca.svid('/ns/prod/sa/web');
    const agent = clientAgent(pki.ca.bundlePem, client);
    cleanups.push(() => agent.close());
    expect((await get(agent, proxy.proxyPort, '/orders/1')).status).toBe(200);
    expect(await serverFingerprint(proxy.proxyPort, pki.ca.bundlePem, client)).toBe(fingerprintOf(pki.server.certPem));

    const notAfter = wholeSecondsFromNow(48 * HOUR);
    const next = await pki.ca.svid(SERVER_ID, { dns: ['localhost'], notAfter });
    expect(fingerprintOf(next.certPem)).not.toBe(fingerprintOf(pki.server.certPem));
    writeSvid(pki, next);
    await waitFor(async () => (await serverFingerprint(proxy.proxyPort, pki.ca.bundlePem, client)) === fingerprintOf(next.certPem), 5_000, 'the new server SVID');
    expect(await metric(proxy, 'portcullis_svid_expiry_timestamp_seconds')).toBe(notAfter.getTime() / 1000);
    expect(await metric(proxy, 'portcullis_svid_reloads_total{result="ok"}')).toBeGreaterThanOrEqual(1);

    // The keep-alive connection opened under the old SVID still serves, without a new handshake.
    const handshakes = countHandshakes(proxy);
    try {
      const res = await get(agent, proxy.proxyPort, '/orders/2');
      expect(res.status).toBe(200);
      expect((res.json().headers as Record<string, string>)['x-forwarded-client-cert']).toBe(
        `By=${OWN_ID};Hash=${derSha256Hex(client.certPem)};URI=spiffe://example.org/ns/prod/sa/web`,
      );
    } finally {
      handshakes.stop();
    }
    expect(handshakes.count).toBe(0);
    expect(upstream.received).toHaveLength(2);
  });
});

describe('bundle rotation', () => {
  it('lets clients of the new CA in and refuses clients of the old CA on new connections', async () => {
    const { pki, proxy, upstream } = await start();
    const oldClient = await pki.ca.svid('/ns/prod/sa/web');
    expect((await tlsExchange(proxy.proxyPort, { ca: pki.ca.bundlePem, client: oldClient })).status).toBe(200);

    const newCa = await DevCa.create('example.org');
    const newServer = await newCa.svid(SERVER_ID, { dns: ['localhost'] });
    const newClient = await newCa.svid('/ns/prod/sa/web');
    const bothCas = pki.ca.bundlePem + newCa.bundlePem;
    writeSvid(pki, newServer);
    writeFileSync(join(pki.dir, 'bundle.pem'), newCa.bundlePem);
    await waitFor(async () => (await serverFingerprint(proxy.proxyPort, bothCas, newClient)) === fingerprintOf(newServer.certPem), 5_000, 'the new server SVID');
    // The bundle may land one poll after the SVID: wait until the new CA's clients get in.
    await waitFor(async () => (await tlsExchange(proxy.proxyPort, { ca: bothCas, client: newClient })).status === 200, 5_000, 'the new bundle');

    const received = upstream.received.length;
    const before = await metric(proxy, failureSample('untrusted_chain'));
    const refused = await tlsExchange(proxy.proxyPort, { ca: bothCas, client: oldClient });
    expect(refused.status).toBeUndefined();
    expect(refused.response).toBe('');
    await waitFor(async () => (await metric(proxy, failureSample('untrusted_chain'))) === before + 1, 3_000, 'untrusted_chain to be counted');
    expect(upstream.received).toHaveLength(received);

    const agent = clientAgent(newCa.bundlePem, newClient);
    cleanups.push(() => agent.close());
    const res = await get(agent, proxy.proxyPort, '/orders/1');
    expect(res.status).toBe(200);
    expect((res.json().headers as Record<string, string>)['x-forwarded-client-cert']).toBe(
      `By=${OWN_ID};Hash=${derSha256Hex(newClient.certPem)};URI=spiffe://example.org/ns/prod/sa/web`,
    );
  });
});

describe('bad files', () => {
  it('keeps serving the last good SVID through truncated, corrupted and mismatched files, then takes a good pair', async () => {
    const { pki, proxy } = await start();
    const client = await pki.ca.svid('/ns/prod/sa/web');
    const certFile = join(pki.dir, 'svid.pem');
    const keyFile = join(pki.dir, 'svid_key.pem');
    const original = fingerprintOf(pki.server.certPem);
    const next = await pki.ca.svid(SERVER_ID, { dns: ['localhost'] });
    const errors = () => metric(proxy, 'portcullis_svid_reloads_total{result="error"}');
    const stillServing = async () => {
      expect(await serverFingerprint(proxy.proxyPort, pki.ca.bundlePem, client)).toBe(original);
      expect((await tlsExchange(proxy.proxyPort, { ca: pki.ca.bundlePem, client })).status).toBe(200);
    };
    expect(await errors()).toBe(0);

    const lines = next.certPem.trim().split('\n');
    const corruptBody = lines.map((line, i) => (i === 3 ? line.replace(/[A-Za-z]/g, 'A').slice(0, 10) : line)).join('\n') + '\n';
    const bad: [string, string, string][] = [
      ['a truncated cert', certFile, next.certPem.slice(0, Math.floor(next.certPem.length / 2))],
      ['a complete PEM block with a corrupted body', certFile, corruptBody],
      ['a new cert under the old key', certFile, next.certPem],
      ['a truncated key', keyFile, next.keyPem.slice(0, 60)],
      ['a bundle that is not PEM', join(pki.dir, 'bundle.pem'), 'not a bundle\n'],
    ];
    let expected = 0;
    for (const [what, file, content] of bad) {
      const previous = readFileSync(file, 'utf8');
      replaceFile(file, content);
      expected++;
      await waitFor(async () => (await errors()) >= expected, 3_000, `${what} to be refused`);
      await stillServing();
      // Restore this file before the next case, so each case breaks exactly one thing.
      if (file !== certFile) replaceFile(file, previous);
      else replaceFile(file, pki.server.certPem);
      await waitFor(async () => (await errors()) >= expected, 3_000, 'restore');
    }
    expect(proxy.proxy.server.listening).toBe(true);

    // A good pair, written key first: picked up (a poll between the two writes may refuse one more).
    const oks = await metric(proxy, 'portcullis_svid_reloads_total{result="ok"}');
    writeSvid(pki, next);
    await waitFor(async () => (await serverFingerprint(proxy.proxyPort, pki.ca.bundlePem, client)) === fingerprintOf(next.certPem), 5_000, 'the good pair');
    expect(await metric(proxy, 'portcullis_svid_reloads_total{result="ok"}')).toBeGreaterThan(oks);
    expect((await tlsExchange(proxy.proxyPort, { ca: pki.ca.bundlePem, client })).status).toBe(200);
  });
});

describe('TLS session resumption', () => {
  it('resumes with the SPIFFE checks still applied, and not across a bundle change', async () => {
    const { pki, proxy, upstream } = await start();
    const client = await pki.ca.svid('/ns/prod/sa/web');
    const xfcc = `"x-forwarded-client-cert":"By=${OWN_ID};Hash=${derSha256Hex(client.certPem)};URI=spiffe://example.org/ns/prod/sa/web"`;

    const first = await tlsExchange(proxy.proxyPort, { ca: pki.ca.bundlePem, client });
    expect(first.status).toBe(200);
    expect(first.reused).toBe(false);
    expect(first.session).toBeDefined();

    const resumed = await tlsExchange(proxy.proxyPort, { ca: pki.ca.bundlePem, client, session: first.session });
    expect(resumed.reused).toBe(true);
    expect(resumed.status).toBe(200);
    expect(resumed.response).toContain(xfcc);

    // New CA: new bundle and a server SVID signed by it. The old client is no longer trusted.
    const newCa = await DevCa.create('example.org');
    const newServer = await newCa.svid(SERVER_ID, { dns: ['localhost'] });
    const newClient = await newCa.svid('/ns/prod/sa/web');
    const bothCas = pki.ca.bundlePem + newCa.bundlePem;
    writeSvid(pki, newServer);
    writeFileSync(join(pki.dir, 'bundle.pem'), newCa.bundlePem);
    await waitFor(async () => (await tlsExchange(proxy.proxyPort, { ca: bothCas, client: newClient })).status === 200, 5_000, 'the new bundle');

    // The old client cannot get in by resuming its old session.
    const received = upstream.received.length;
    const sneaky = await tlsExchange(proxy.proxyPort, { ca: bothCas, client, session: resumed.session ?? first.session });
    expect(sneaky.reused).toBe(false);
    expect(sneaky.status).toBeUndefined();
    expect(upstream.received).toHaveLength(received);

    // A new-CA client offering the old session gets a full handshake, and in.
    const fresh = await tlsExchange(proxy.proxyPort, { ca: bothCas, client: newClient, session: first.session });
    expect(fresh.reused).toBe(false);
    expect(fresh.status).toBe(200);
    expect(fresh.response).toContain(`Hash=${derSha256Hex(newClient.certPem)};URI=spiffe://example.org/ns/prod/sa/web`);

    // And sessions issued under the new bundle resume again.
    const again = await tlsExchange(proxy.proxyPort, { ca: bothCas, client: newClient, session: fresh.session });
    expect(again.reused).toBe(true);
    expect(again.status).toBe(200);
  });

  it('refuses to resume a session whose client certificate has since expired', async () => {
    const { pki, proxy } = await start();
    // Valid for a few seconds only: long enough for one exchange, then the resumption must fail.
    const client = await pki.ca.svid('/ns/prod/sa/web', { notAfter: new Date(Date.now() + 2_000) });
    const first = await tlsExchange(proxy.proxyPort, { ca: pki.ca.bundlePem, client });
    expect(first.status).toBe(200);
    await waitFor(() => Date.now() > new X509Expiry(client).ms + 1_000, 5_000, 'the client SVID to expire');
    const before = await metric(proxy, failureSample('expired'));
    const resumed = await tlsExchange(proxy.proxyPort, { ca: pki.ca.bundlePem, client, session: first.session });
    expect(resumed.status).toBeUndefined();
    await waitFor(async () => (await metric(proxy, failureSample('expired'))) === before + 1, 3_000, 'expired to be counted');
  });
});

class X509Expiry {
  readonly ms: number;
  constructor(issued: Issued) {
    this.ms = issued.cert.notAfter.getTime();
  }
}
