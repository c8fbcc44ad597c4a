// Peer identity over real TLS: the X509-SVID rules, federation, identity.allow, garbage on the
// TLS port, and "computed once per connection". Certificates are minted per run.
import { randomBytes } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { clientAgent, configYaml, createPki, DEFAULT_ROUTES, DevCa, get, SERVER_ID, startProxy, startUpstream, type Issued, type Pki, type Upstream } from '../support/harness.ts';
import { x509 } from '../../src/cli/dev-pki.ts';
import type { Instance } from '../../src/cli/instance.ts';
import { PeerVerifier } from '../../src/identity/peer-verifier.ts';
import { derSha256Hex, failureSample, metric, tlsExchange, totalHandshakeFailures, waitFor } from './identity-support.ts';

const HOUR = 3_600_000;
const OWN_ID = `spiffe://example.org${SERVER_ID}`;

type Client = Pick<Issued, 'certPem' | 'keyPem'>;

/** A client that presents `leaf` followed by `intermediates` in its certificate message. */
function withChain(leaf: Issued, ...intermediates: Issued[]): Client {
  return { certPem: leaf.certPem + intermediates.map((i) => i.certPem).join(''), keyPem: leaf.keyPem };
}

describe('peer identity (example.org only)', () => {
  let pki: Pki;
  let upstream: Upstream;
  let proxy: Instance;

  beforeAll(async () => {
    pki = await createPki();
    upstream = await startUpstream();
    proxy = await startProxy(pki, configYaml(pki, upstream.url, DEFAULT_ROUTES));
  });
  afterAll(async () => {
    await proxy?.close();
    await upstream?.close();
    pki?.cleanup();
  });
  beforeEach(() => {
    upstream.received.length = 0;
  });

  async function request(client: Client | undefined, path = '/orders/1') {
    const agent = clientAgent(pki.ca.bundlePem, client as Issued | undefined);
    try {
      return await get(agent, proxy.proxyPort, path);
    } finally {
      await agent.destroy();
    }
  }

  /** The client is refused at connection level, the service sees nothing, one failure is counted under `reason`. */
  async function expectRefused(client: Client | undefined, reason: string): Promise<void> {
    const before = await metric(proxy, failureSample(reason));
    const totalBefore = await totalHandshakeFailures(proxy);
    await expect(request(client)).rejects.toThrow();
    await waitFor(async () => (await metric(proxy, failureSample(reason))) === before + 1, 3_000, `${reason} to be counted`);
    // Counted once, under this reason only.
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(await totalHandshakeFailures(proxy)).toBe(totalBefore + 1);
    expect(upstream.received).toHaveLength(0);
  }

  it('forwards a valid peer with an XFCC naming this sidecar, the leaf hash and the peer', async () => {
    const client = await pki.ca.svid('/ns/prod/sa/web');
    const res = await request(client);
    expect(res.status).toBe(200);
    const headers = res.json().headers as Record<string, string>;
    expect(headers['x-forwarded-client-cert']).toBe(`By=${OWN_ID};Hash=${derSha256Hex(client.certPem)};URI=spiffe://example.org/ns/prod/sa/web`);
    expect(upstream.received).toHaveLength(1);
  });

  it('refuses a client without a certificate', async () => {
    await expectRefused(undefined, 'no_client_cert');
  });

  it('refuses a leaf with two URI SANs', async () => {
    const client = await pki.ca.svid('', { uris: ['spiffe://example.org/ns/prod/sa/web', 'spiffe://example.org/ns/prod/sa/admin'] });
    await expectRefused(client, 'uri_san_count');
  });

  it('refuses a leaf with no URI SAN', async () => {
    const client = await pki.ca.svid('', { uris: [], dns: ['web.example.org'] });
    await expectRefused(client, 'uri_san_count');
  });

  it.each([
    ['an uppercase trust domain', 'spiffe://EXAMPLE.org/ns/prod/sa/web'],
    ['a dot-dot segment', 'spiffe://example.org/ns/prod/../prod/sa/web'],
    ['an https URI', 'https://example.org/ns/prod/sa/web'],
    ['an empty path segment', 'spiffe://example.org/ns//prod/sa/web'],
    ['a percent-encoded path', 'spiffe://example.org/ns/prod/sa/w%65b'],
    ['a 256-byte trust domain', `spiffe://${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(64)}/ns/prod/sa/web`],
  ])('refuses a URI SAN with %s', async (_what, uri) => {
    const client = await pki.ca.svid('', { uris: [uri] });
    await expectRefused(client, 'bad_spiffe_id');
  });

  it('refuses a leaf that is a CA', async () => {
    const client = await pki.ca.svid('/ns/prod/sa/web', { ca: true, keyUsages: x509.KeyUsageFlags.digitalSignature, subject: 'O=SPIFFE' });
    await expectRefused(client, 'leaf_is_ca');
  });

  it('refuses a leaf without digitalSignature', async () => {
    const client = await pki.ca.svid('/ns/prod/sa/web', { keyUsages: x509.KeyUsageFlags.keyAgreement });
    await expectRefused(client, 'key_usage');
  });

  it('refuses a leaf with only keyEncipherment', async () => {
    const client = await pki.ca.svid('/ns/prod/sa/web', { keyUsages: x509.KeyUsageFlags.keyEncipherment });
    await expectRefused(client, 'key_usage');
  });

  it('refuses a leaf with keyCertSign', async () => {
    const client = await pki.ca.svid('/ns/prod/sa/web', { keyUsages: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign });
    await expectRefused(client, 'key_usage');
  });

  it('refuses an expired leaf', async () => {
    const client = await pki.ca.svid('/ns/prod/sa/web', { notBefore: new Date(Date.now() - 2 * HOUR), notAfter: new Date(Date.now() - HOUR) });
    await expectRefused(client, 'expired');
  });

  it('refuses a leaf that is not yet valid', async () => {
    const client = await pki.ca.svid('/ns/prod/sa/web', { notBefore: new Date(Date.now() + HOUR), notAfter: new Date(Date.now() + 2 * HOUR) });
    await expectRefused(client, 'not_yet_valid');
  });

  it('refuses a chain signed by an untrusted CA of the same trust domain name', async () => {
    const rogue = await DevCa.create('example.org');
    const client = await rogue.svid('/ns/prod/sa/web');
    await expectRefused(client, 'untrusted_chain');
  });

  it('refuses an SVID of a trust domain that is not accepted, even when signed by a trusted CA', async () => {
    const client = await pki.ca.svid('', { uris: ['spiffe://other.org/ns/prod/sa/web'] });
    await expectRefused(client, 'unknown_trust_domain');
  });

  it('accepts an intermediate-signed SVID when the intermediate is presented', async () => {
    const intermediate = await pki.ca.intermediate();
    const leaf = await pki.ca.svid('/ns/prod/sa/web', {}, intermediate);
    const res = await request(withChain(leaf, intermediate));
    expect(res.status).toBe(200);
    expect((res.json().headers as Record<string, string>)['x-forwarded-client-cert']).toBe(
      `By=${OWN_ID};Hash=${derSha256Hex(leaf.certPem)};URI=spiffe://example.org/ns/prod/sa/web`,
    );
  });

  it('refuses an intermediate-signed SVID when the intermediate is not presented', async () => {
    const intermediate = await pki.ca.intermediate();
    const leaf = await pki.ca.svid('/ns/prod/sa/web', {}, intermediate);
    await expectRefused(leaf, 'untrusted_chain');
  });

  it('refuses an SVID whose presented intermediate has expired', async () => {
    const intermediate = await pki.ca.intermediate({ notBefore: new Date(Date.now() - 2 * HOUR), notAfter: new Date(Date.now() - HOUR) });
    const leaf = await pki.ca.svid('/ns/prod/sa/web', {}, intermediate);
    await expectRefused(withChain(leaf, intermediate), 'expired');
  });

  /** Leaf, then `intermediates` CAs each signed by the one before it (the first by the root), nearest first. */
  async function chainOf(intermediates: number): Promise<Client> {
    const cas: Issued[] = [];
    for (let i = 0; i < intermediates; i++) cas.push(await pki.ca.intermediate({ subject: `CN=intermediate ${i},O=Portcullis` }, cas[i - 1]));
    const leaf = await pki.ca.svid('/ns/prod/sa/web', {}, cas.at(-1));
    return withChain(leaf, ...cas.reverse());
  }

  it('accepts a presented chain of 16 certificates (leaf and 15 intermediates)', async () => {
    const res = await request(await chainOf(15));
    expect(res.status).toBe(200);
  });

  it('refuses a presented chain of 17 certificates (SPEC step 1: at most 16)', async () => {
    await expectRefused(await chainOf(16), 'untrusted_chain');
  });

  it('accepts a leaf with an empty Subject (SPIFFE identity is the URI SAN alone)', async () => {
    const client = await pki.ca.svid('/ns/prod/sa/web', { subject: '' });
    const res = await request(client);
    expect(res.status).toBe(200);
    expect((res.json().headers as Record<string, string>)['x-forwarded-client-cert']).toContain('URI=spiffe://example.org/ns/prod/sa/web');
  });

  it('answers 403 peer_not_allowed to a valid SVID outside identity.allow, and the service sees nothing', async () => {
    const client = await pki.ca.svid('/ns/dev/sa/web');
    const failures = await totalHandshakeFailures(proxy);
    const res = await request(client);
    expect(res.status).toBe(403);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.json()).toMatchObject({ reason: 'peer_not_allowed' });
    expect(upstream.received).toHaveLength(0);
    expect(await totalHandshakeFailures(proxy)).toBe(failures);
  });

  it('closes plaintext HTTP and random bytes on the TLS port and keeps serving', async () => {
    const garbage = [Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'), randomBytes(512), Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x40]), randomBytes(64)])];
    for (const bytes of garbage) {
      const closed = await new Promise<{ data: Buffer }>((resolve, reject) => {
        const chunks: Buffer[] = [];
        const socket = netConnect(proxy.proxyPort, '127.0.0.1', () => socket.write(bytes));
        const timer = setTimeout(() => {
          socket.destroy();
          reject(new Error('the proxy kept a garbage connection open'));
        }, 3_000);
        socket.on('data', (chunk: Buffer) => chunks.push(chunk));
        socket.on('error', () => undefined);
        socket.on('close', () => {
          clearTimeout(timer);
          resolve({ data: Buffer.concat(chunks) });
        });
      });
      // Never an HTTP answer in plaintext: at most a TLS alert record (content type 21).
      expect(closed.data.toString('latin1')).not.toMatch(/HTTP\//);
      if (closed.data.length > 0) expect(closed.data[0]).toBe(0x15);
    }
    expect(upstream.received).toHaveLength(0);
    const client = await pki.ca.svid('/ns/prod/sa/web');
    expect((await request(client)).status).toBe(200);
  });

  describe('once per connection', () => {
    afterEach(() => {
      vi.restoreAllMocks();
    });

    it('verifies the peer once for several requests on one keep-alive connection', async () => {
      const client = await pki.ca.svid('/ns/prod/sa/web');
      const verify = vi.spyOn(PeerVerifier.prototype, 'verify');
      let handshakes = 0;
      const onSecure = () => handshakes++;
      proxy.proxy.server.on('secureConnection', onSecure);
      const agent = clientAgent(pki.ca.bundlePem, client);
      try {
        for (let i = 0; i < 5; i++) {
          const res = await get(agent, proxy.proxyPort, `/orders/${i}`);
          expect(res.status).toBe(200);
          expect((res.json().headers as Record<string, string>)['x-forwarded-client-cert']).toContain(`Hash=${derSha256Hex(client.certPem)}`);
        }
      } finally {
        await agent.close();
        proxy.proxy.server.off('secureConnection', onSecure);
      }
      expect(handshakes).toBe(1);
      expect(verify).toHaveBeenCalledTimes(1);
      expect(upstream.received).toHaveLength(5);
    });

    it('runs the SPIFFE checks again on a resumed session (and the request carries the right XFCC)', async () => {
      const client = await pki.ca.svid('/ns/prod/sa/web');
      const first = await tlsExchange(proxy.proxyPort, { ca: pki.ca.bundlePem, client });
      expect(first.status).toBe(200);
      expect(first.session).toBeDefined();
      const verify = vi.spyOn(PeerVerifier.prototype, 'verify');
      const second = await tlsExchange(proxy.proxyPort, { ca: pki.ca.bundlePem, client, session: first.session });
      expect(second.reused).toBe(true);
      expect(second.status).toBe(200);
      expect(second.response).toContain(`"x-forwarded-client-cert":"By=${OWN_ID};Hash=${derSha256Hex(client.certPem)};URI=spiffe://example.org/ns/prod/sa/web"`);
      expect(verify).toHaveBeenCalledTimes(1);
    });

    it('resumes the session of an intermediate-signed SVID (whose intermediate is not visible on resumption)', async () => {
      const intermediate = await pki.ca.intermediate();
      const leaf = await pki.ca.svid('/ns/prod/sa/web', {}, intermediate);
      const client = withChain(leaf, intermediate);
      const first = await tlsExchange(proxy.proxyPort, { ca: pki.ca.bundlePem, client });
      expect(first.status).toBe(200);
      const second = await tlsExchange(proxy.proxyPort, { ca: pki.ca.bundlePem, client, session: first.session });
      expect(second.reused).toBe(true);
      expect(second.status).toBe(200);
      expect(second.response).toContain(`Hash=${derSha256Hex(leaf.certPem)};URI=spiffe://example.org/ns/prod/sa/web`);
    });
  });
});

describe('federation (example.org + partner.org)', () => {
  let pki: Pki;
  let partner: DevCa;
  let upstream: Upstream;
  let proxy: Instance;

  beforeAll(async () => {
    pki = await createPki();
    // As a SPIRE CA does, partner.org's names its trust domain in a URI SAN (example.org's does not).
    partner = await DevCa.create('partner.org', { uris: ['spiffe://partner.org'] });
    pki.write('partner-bundle.pem', partner.bundlePem);
    upstream = await startUpstream();
    const yaml = `listen: { address: 127.0.0.1, port: 0 }
identity:
  certFile: svid.pem
  keyFile: svid_key.pem
  bundleFile: bundle.pem
  trustDomains: [example.org, partner.org]
  bundles: { partner.org: partner-bundle.pem }
  allow: ["spiffe://example.org/ns/prod/**", "spiffe://partner.org/**"]
upstream: { url: "${upstream.url}", timeout: 2s, connectTimeout: 1s }
pdp: { policyFile: policy.yaml }
admin: { address: 127.0.0.1, port: 0 }
${DEFAULT_ROUTES}`;
    proxy = await startProxy(pki, yaml);
  });
  afterAll(async () => {
    await proxy?.close();
    await upstream?.close();
    pki?.cleanup();
  });
  beforeEach(() => {
    upstream.received.length = 0;
  });

  async function request(client: Client) {
    const agent = clientAgent(pki.ca.bundlePem, client as Issued);
    try {
      return await get(agent, proxy.proxyPort, '/orders/1');
    } finally {
      await agent.destroy();
    }
  }

  async function expectRefused(client: Client, reason: string): Promise<void> {
    const before = await metric(proxy, failureSample(reason));
    await expect(request(client)).rejects.toThrow();
    await waitFor(async () => (await metric(proxy, failureSample(reason))) === before + 1, 3_000, `${reason} to be counted`);
    expect(upstream.received).toHaveLength(0);
  }

  it('accepts a partner.org SVID signed by the partner CA', async () => {
    const client = await partner.svid('/ns/billing/sa/payments');
    const res = await request(client);
    expect(res.status).toBe(200);
    expect((res.json().headers as Record<string, string>)['x-forwarded-client-cert']).toBe(
      `By=${OWN_ID};Hash=${derSha256Hex(client.certPem)};URI=spiffe://partner.org/ns/billing/sa/payments`,
    );
  });

  it('still accepts an example.org SVID signed by the example.org CA', async () => {
    expect((await request(await pki.ca.svid('/ns/prod/sa/web'))).status).toBe(200);
  });

  it('accepts intermediate-signed SVIDs of either trust domain when the intermediate is presented', async () => {
    for (const ca of [pki.ca, partner]) {
      const intermediate = await ca.intermediate();
      const leaf = await ca.svid('/ns/prod/sa/web', {}, intermediate);
      const res = await request(withChain(leaf, intermediate));
      expect(res.status).toBe(200);
      expect((res.json().headers as Record<string, string>)['x-forwarded-client-cert']).toContain(`URI=spiffe://${ca.trustDomain}/ns/prod/sa/web`);
    }
  });

  it('refuses a leaf whose only URI SAN is the root-path ID spiffe://partner.org, signed by the partner CA', async () => {
    // identity.allow has spiffe://partner.org/**: the leaf rule (a non-root path) must refuse it at the handshake.
    const client = await partner.svid('');
    expect(client.cert.getExtension(x509.SubjectAlternativeNameExtension)?.names.items.map((n) => n.value)).toEqual(['spiffe://partner.org']);
    await expectRefused(client, 'bad_spiffe_id');
  });

  it('refuses an example.org ID issued by the partner.org CA (cross-trust-domain forgery)', async () => {
    const forged = await partner.svid('', { uris: ['spiffe://example.org/ns/prod/sa/web'] });
    await expectRefused(forged, 'untrusted_chain');
  });

  it('refuses a partner.org ID issued by the example.org CA (the reverse forgery)', async () => {
    const forged = await pki.ca.svid('', { uris: ['spiffe://partner.org/ns/billing/sa/payments'] });
    await expectRefused(forged, 'untrusted_chain');
  });

  it('refuses an example.org ID issued by a partner.org intermediate, even with the intermediate presented', async () => {
    const intermediate = await partner.intermediate();
    const forged = await partner.svid('', { uris: ['spiffe://example.org/ns/prod/sa/web'] }, intermediate);
    await expectRefused(withChain(forged, intermediate), 'untrusted_chain');
  });
});
