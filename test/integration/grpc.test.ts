// gRPC through the sidecar to an h2c service (SPEC "Protocols and streams"): a real grpc-js client
// with a client SVID, a real grpc-js server behind `upstream.protocol: h2c`. The four kinds of
// call, trailers and non-OK statuses relayed unchanged, metadata carrying XFCC and never the
// grant, grpc-timeout passed on, and streams cut gRPC's way when their grant expires or is revoked.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { configYaml, createPki, type Issued, type Pki } from '../support/harness.ts';
import type { Instance } from '../../src/cli/instance.ts';
import { admin, grantClaims, issuerKey, JIT_ISS, metric, signToken, sleep, startNamed, type IssuerKey } from './decision-support.ts';
import type { memoryAuditLog } from '../../src/telemetry/audit.ts';

const raw = { requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b };
const SERVICE: grpc.ServiceDefinition = {
  unary: { path: '/demo.v1.Demo/Unary', requestStream: false, responseStream: false, ...raw },
  fail: { path: '/demo.v1.Demo/Fail', requestStream: false, responseStream: false, ...raw },
  watch: { path: '/demo.v1.Demo/Watch', requestStream: false, responseStream: true, ...raw },
  upload: { path: '/demo.v1.Demo/Upload', requestStream: true, responseStream: false, ...raw },
  chat: { path: '/demo.v1.Demo/Chat', requestStream: true, responseStream: true, ...raw },
  guardedWatch: { path: '/demo.v1.Guarded/Watch', requestStream: false, responseStream: true, ...raw },
  guardedUpload: { path: '/demo.v1.Guarded/Upload', requestStream: true, responseStream: false, ...raw },
};

const ROUTES = `routes:
  - name: demo
    match: { path: "/demo.v1.Demo/**" }
    privileged: false
  - name: guarded
    match: { path: "/demo.v1.Guarded/**" }
    action: demo.stream
    resource: "grpc:{**}"
    sensitivity: low
`;

interface Seen {
  path: string;
  metadata: grpc.Metadata;
  deadline: grpc.Deadline;
}

describe('gRPC through the proxy to an h2c service', () => {
  let pki: Pki;
  let server: grpc.Server;
  let proxy: Instance;
  let audit: ReturnType<typeof memoryAuditLog>;
  let client: Issued;
  let jit: IssuerKey;
  let grpcClient: grpc.Client;
  const seen: Seen[] = [];
  const serviceEnded: { path: string; at: number }[] = [];

  const note = (path: string, call: { metadata: grpc.Metadata; getDeadline(): grpc.Deadline; on(event: 'close' | 'cancelled', f: () => void): unknown }) => {
    seen.push({ path, metadata: call.metadata, deadline: call.getDeadline() });
    call.on('cancelled', () => serviceEnded.push({ path, at: Date.now() }));
  };

  beforeAll(async () => {
    server = new grpc.Server();
    server.addService(SERVICE, {
      unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        note('unary', call);
        const trailer = new grpc.Metadata();
        trailer.set('x-answer', 'forty-two');
        callback(null, Buffer.concat([Buffer.from('echo:'), call.request]), trailer);
      },
      fail: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        note('fail', call);
        callback({ code: grpc.status.NOT_FOUND, details: 'no such order' });
      },
      watch: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
        note('watch', call);
        let n = 0;
        const tick = setInterval(() => {
          if (++n > 5) {
            clearInterval(tick);
            call.end();
            return;
          }
          call.write(Buffer.from(`event ${n}`));
        }, 20);
        call.on('cancelled', () => clearInterval(tick));
      },
      upload: (call: grpc.ServerReadableStream<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        note('upload', call);
        let bytes = 0;
        call.on('data', (b: Buffer) => (bytes += b.length));
        call.on('end', () => callback(null, Buffer.from(`got ${bytes}`)));
      },
      chat: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        note('chat', call);
        call.on('data', (b: Buffer) => call.write(Buffer.concat([Buffer.from('re:'), b])));
        call.on('end', () => call.end());
      },
      guardedWatch: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
        note('guardedWatch', call);
        const tick = setInterval(() => call.write(Buffer.from('tick')), 50);
        call.on('cancelled', () => clearInterval(tick));
        call.on('close', () => clearInterval(tick));
      },
      guardedUpload: (call: grpc.ServerReadableStream<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        note('guardedUpload', call);
        call.on('data', () => undefined);
        call.on('end', () => callback(null, Buffer.from('done')));
      },
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, p) => (error ? reject(error) : resolve(p))));
    pki = await createPki();
    jit = await issuerKey('jit');
    pki.write('jit.json', jit.jwks);
    pki.write('policy.yaml', 'rules:\n  - { id: streams, effect: allow, subjects: ["spiffe://example.org/ns/prod/sa/web"], actions: [demo.stream] }\n');
    const yaml = configYaml(pki, `http://127.0.0.1:${port}`, `${ROUTES}grants: { issuers: [{ issuer: "${JIT_ISS}", jwksFile: jit.json }] }\n`).replace('upstream: { url:', 'upstream: { protocol: h2c, url:');
    const started = await startNamed(pki, 'grpc.yaml', yaml);
    proxy = started.instance;
    audit = started.audit;
    client = await pki.ca.svid('/ns/prod/sa/web');
    const credentials = grpc.credentials.createSsl(Buffer.from(pki.ca.bundlePem), Buffer.from(client.keyPem), Buffer.from(client.certPem));
    grpcClient = new grpc.Client(`localhost:${proxy.proxyPort}`, credentials, { 'grpc.ssl_target_name_override': 'localhost' });
  });
  afterAll(async () => {
    grpcClient.close();
    await proxy.close();
    server.forceShutdown();
    pki.cleanup();
  });

  const grantMetadata = async (jti: string, expInMs: number): Promise<grpc.Metadata> => {
    const now = Date.now();
    const token = await signToken(grantClaims({ sub: 'spiffe://example.org/ns/prod/sa/web', scope: 'demo.stream', jti, iat: Math.floor(now / 1000) - 1, exp: (now + expInMs) / 1000 }), { key: jit.key, kid: 'jit' });
    const metadata = new grpc.Metadata();
    metadata.set('x-jit-grant', token);
    return metadata;
  };

  it('unary: the answer and its trailers relayed; the service sees XFCC in metadata and never the grant; grpc-timeout passed on', async () => {
    const metadata = await grantMetadata('unary-1', 60_000);
    let trailers: grpc.Metadata | undefined;
    const answer = await new Promise<Buffer>((resolve, reject) => {
      const call = grpcClient.makeUnaryRequest('/demo.v1.Demo/Unary', raw.requestSerialize, raw.responseDeserialize, Buffer.from('ping'), metadata, { deadline: Date.now() + 5000 }, (error, value) => (error ? reject(error) : resolve(value!)));
      call.on('status', (status: grpc.StatusObject) => (trailers = status.metadata));
    });
    expect(answer.toString()).toBe('echo:ping');
    await sleep(20);
    expect(trailers?.get('x-answer')).toEqual(['forty-two']);
    const call = seen.find((s) => s.path === 'unary')!;
    expect(String(call.metadata.get('x-forwarded-client-cert')[0])).toMatch(/URI=spiffe:\/\/example\.org\/ns\/prod\/sa\/web$/);
    expect(call.metadata.get('x-jit-grant')).toEqual([]);
    expect(call.deadline).not.toBe(Infinity);
    expect(Number(call.deadline) - Date.now()).toBeLessThan(5000);
  });

  it('a non-OK status from the service is relayed unchanged', async () => {
    const error = await new Promise<grpc.ServiceError>((resolve) => grpcClient.makeUnaryRequest('/demo.v1.Demo/Fail', raw.requestSerialize, raw.responseDeserialize, Buffer.from('x'), (e) => resolve(e!)));
    expect(error.code).toBe(grpc.status.NOT_FOUND);
    expect(error.details).toBe('no such order');
    expect(await metric(proxy, 'portcullis_requests_total', { route: 'demo', protocol: 'grpc', code: '5' })).toBe(1);
  });

  it('server-streaming, client-streaming and bidi calls all work', async () => {
    const events = await new Promise<string[]>((resolve, reject) => {
      const got: string[] = [];
      const call = grpcClient.makeServerStreamRequest('/demo.v1.Demo/Watch', raw.requestSerialize, raw.responseDeserialize, Buffer.from('w'));
      call.on('data', (b: Buffer) => got.push(b.toString()));
      call.on('error', reject);
      call.on('status', (s: grpc.StatusObject) => (s.code === 0 ? resolve(got) : reject(new Error(s.details))));
    });
    expect(events).toEqual(['event 1', 'event 2', 'event 3', 'event 4', 'event 5']);
    const uploaded = await new Promise<string>((resolve, reject) => {
      const call = grpcClient.makeClientStreamRequest('/demo.v1.Demo/Upload', raw.requestSerialize, raw.responseDeserialize, (e, v) => (e ? reject(e) : resolve(v!.toString())));
      for (let i = 0; i < 50; i++) call.write(Buffer.alloc(1000, i));
      call.end();
    });
    expect(uploaded).toBe('got 50000');
    const replies = await new Promise<string[]>((resolve, reject) => {
      const got: string[] = [];
      const call = grpcClient.makeBidiStreamRequest('/demo.v1.Demo/Chat', raw.requestSerialize, raw.responseDeserialize);
      call.on('data', (b: Buffer) => {
        got.push(b.toString());
        if (got.length === 3) call.end();
      });
      call.on('error', reject);
      call.on('status', () => resolve(got));
      call.write(Buffer.from('a'));
      call.write(Buffer.from('b'));
      call.write(Buffer.from('c'));
    });
    expect(replies).toEqual(['re:a', 're:b', 're:c']);
  });

  it('a server-streaming call is cut at the grant exp: trailers grpc-status 16, grant_expired, and the service side cancelled', async () => {
    const expMs = Date.now() + 1200;
    const metadata = await grantMetadata('watch-exp', expMs - Date.now());
    const ended = await new Promise<{ at: number; code: number; details: string; messages: number }>((resolve) => {
      let messages = 0;
      const call = grpcClient.makeServerStreamRequest('/demo.v1.Guarded/Watch', raw.requestSerialize, raw.responseDeserialize, Buffer.from('w'), metadata);
      call.on('data', () => messages++);
      call.on('error', () => undefined);
      call.on('status', (s: grpc.StatusObject) => resolve({ at: Date.now(), code: s.code, details: s.details, messages }));
    });
    expect(ended.messages).toBeGreaterThan(5);
    expect(ended.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(ended.details).toBe('grant_expired');
    process.stdout.write(`cut lateness: gRPC server-streaming at grant exp ${ended.at - expMs} ms\n`);
    expect(ended.at - expMs).toBeGreaterThanOrEqual(0);
    expect(ended.at - expMs).toBeLessThan(250);
    await sleep(100);
    const cancelled = serviceEnded.filter((e) => e.path === 'guardedWatch').at(-1);
    expect(cancelled, 'the service side is cancelled too').toBeDefined();
    expect(cancelled!.at - expMs).toBeLessThan(250);
    expect(audit.events.find((e) => e.grant_jti === 'watch-exp')).toMatchObject({ event: 'stream_cut', reason: 'grant_expired', protocol: 'grpc' });
  });

  it('a server-streaming call is cut at revocation', async () => {
    const metadata = await grantMetadata('watch-revoked', 60_000);
    let revokedAt = 0;
    const ended = await new Promise<{ at: number; code: number; details: string }>((resolve) => {
      const call = grpcClient.makeServerStreamRequest('/demo.v1.Guarded/Watch', raw.requestSerialize, raw.responseDeserialize, Buffer.from('w'), metadata);
      call.on('data', () => undefined);
      call.on('error', () => undefined);
      call.on('status', (s: grpc.StatusObject) => resolve({ at: Date.now(), code: s.code, details: s.details }));
      setTimeout(() => {
        revokedAt = Date.now();
        void admin(proxy, 'POST', '/admin/revoke', { jti: 'watch-revoked' });
      }, 300);
    });
    expect([ended.code, ended.details]).toEqual([grpc.status.UNAUTHENTICATED, 'grant_revoked']);
    process.stdout.write(`cut lateness: gRPC server-streaming at revocation ${ended.at - revokedAt} ms\n`);
    expect(ended.at - revokedAt).toBeLessThan(250);
  });

  it('a client-streaming call is cut at the grant exp', async () => {
    const expMs = Date.now() + 1000;
    const metadata = await grantMetadata('upload-exp', expMs - Date.now());
    const ended = await new Promise<{ at: number; error: grpc.ServiceError | null }>((resolve) => {
      const call = grpcClient.makeClientStreamRequest('/demo.v1.Guarded/Upload', raw.requestSerialize, raw.responseDeserialize, metadata, (error) => resolve({ at: Date.now(), error: error ?? null }));
      const tick = setInterval(() => call.write(Buffer.alloc(100)), 20);
      call.on('status', () => clearInterval(tick));
    });
    expect([ended.error?.code, ended.error?.details]).toEqual([grpc.status.UNAUTHENTICATED, 'grant_expired']);
    process.stdout.write(`cut lateness: gRPC client-streaming at grant exp ${ended.at - expMs} ms\n`);
    expect(ended.at - expMs).toBeGreaterThanOrEqual(0);
    expect(ended.at - expMs).toBeLessThan(250);
  });

  it('upstream failures are gRPC statuses, never a silent hang: a service that is down is 14 UNAVAILABLE', async () => {
    const pki2 = await createPki();
    const { instance } = await startNamed(pki2, 'down.yaml', configYaml(pki2, 'http://127.0.0.1:1', ROUTES).replace('upstream: { url:', 'upstream: { protocol: h2c, url:'));
    const other = await pki2.ca.svid('/ns/prod/sa/web');
    const c = new grpc.Client(`localhost:${instance.proxyPort}`, grpc.credentials.createSsl(Buffer.from(pki2.ca.bundlePem), Buffer.from(other.keyPem), Buffer.from(other.certPem)), { 'grpc.ssl_target_name_override': 'localhost' });
    try {
      const error = await new Promise<grpc.ServiceError>((resolve) => c.makeUnaryRequest('/demo.v1.Demo/Unary', raw.requestSerialize, raw.responseDeserialize, Buffer.from('x'), (e) => resolve(e!)));
      expect([error.code, error.details]).toEqual([grpc.status.UNAVAILABLE, 'upstream_unavailable']);
    } finally {
      c.close();
      await instance.close();
      pki2.cleanup();
    }
  });

  it('a client-streaming call is cut at revocation, in both directions', async () => {
    const metadata = await grantMetadata('upload-revoked', 60_000);
    let revokedAt = 0;
    const ended = await new Promise<{ at: number; error: grpc.ServiceError | null }>((resolve) => {
      const call = grpcClient.makeClientStreamRequest('/demo.v1.Guarded/Upload', raw.requestSerialize, raw.responseDeserialize, metadata, (error) => resolve({ at: Date.now(), error: error ?? null }));
      const tick = setInterval(() => {
        if (!call.write(Buffer.alloc(100))) return;
      }, 20);
      call.on('status', () => clearInterval(tick));
      setTimeout(() => {
        revokedAt = Date.now();
        void admin(proxy, 'POST', '/admin/revoke', { jti: 'upload-revoked' });
      }, 300);
    });
    expect(ended.error?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(ended.error?.details).toBe('grant_revoked');
    process.stdout.write(`cut lateness: gRPC client-streaming at revocation ${ended.at - revokedAt} ms\n`);
    expect(ended.at - revokedAt).toBeLessThan(250);
    await sleep(100);
    expect(serviceEnded.some((e) => e.path === 'guardedUpload')).toBe(true);
  });
});
