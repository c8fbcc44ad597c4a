// The h2c pool against a real grpc-js server (insecure credentials, TCP and unix socket), driven
// as a proxy would drive it: gRPC-framed request bodies (5-byte length prefix) forwarded as they
// come, the answer's head, messages and trailers relayed unchanged.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Metadata, Server, ServerCredentials, status, type sendUnaryData, type ServerDuplexStream, type ServerReadableStream, type ServerUnaryCall, type ServerWritableStream, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { H2cPool } from '../../src/forward/h2c-pool.ts';
import { field, GRPC_HEADERS, grpcFrame, grpcMessages, send } from '../support/h2c.ts';

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const raw = (b: Buffer): Buffer => b;
function method(name: string, requestStream: boolean, responseStream: boolean) {
  return { path: `/test.Echo/${name}`, requestStream, responseStream, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw, originalName: name };
}
// A service definition with raw-bytes messages: no .proto needed, the wire is real gRPC.
const ECHO = {
  Unary: method('Unary', false, false),
  Stream: method('Stream', false, true),
  Collect: method('Collect', true, false),
  Chat: method('Chat', true, true),
} as unknown as ServiceDefinition;

interface Seen {
  cancelled: number;
  metadata: Metadata[];
}

async function grpcService(address: string): Promise<{ url: string; seen: Seen }> {
  const seen: Seen = { cancelled: 0, metadata: [] };
  const server = new Server();
  const implementation: UntypedServiceImplementation = {
    Unary(call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) {
      seen.metadata.push(call.metadata);
      const text = call.request.toString();
      call.on('cancelled', () => seen.cancelled++);
      if (text === 'deny') return callback({ code: status.PERMISSION_DENIED, details: 'not for you' });
      if (text === 'slow') return void setTimeout(() => callback(null, Buffer.from('late')), 1000);
      const trailer = new Metadata();
      trailer.set('x-trailer', 'tv');
      callback(null, Buffer.from(`hello ${text}`), trailer);
    },
    Stream(call: ServerWritableStream<Buffer, Buffer>) {
      const text = call.request.toString();
      call.on('cancelled', () => seen.cancelled++);
      if (text === 'forever') {
        const timer = setInterval(() => (call.cancelled ? clearInterval(timer) : call.write(Buffer.from('tick'))), 5);
        return;
      }
      for (let i = 0; i < 3; i++) call.write(Buffer.from(`${text}${i}`));
      if (text === 'fail') call.emit('error', { code: status.RESOURCE_EXHAUSTED, details: 'out of ticks' });
      else call.end();
    },
    Collect(call: ServerReadableStream<Buffer, Buffer>, callback: sendUnaryData<Buffer>) {
      const parts: string[] = [];
      call.on('data', (b: Buffer) => parts.push(b.toString()));
      call.on('end', () => callback(null, Buffer.from(parts.join('+'))));
    },
    Chat(call: ServerDuplexStream<Buffer, Buffer>) {
      call.on('data', (b: Buffer) => call.write(Buffer.from(b.toString().toUpperCase())));
      call.on('end', () => call.end());
    },
  };
  server.addService(ECHO, implementation);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync(address, ServerCredentials.createInsecure(), (error, p) => (error ? reject(error) : resolve(p))));
  cleanups.push(() => new Promise<void>((resolve) => server.tryShutdown(() => resolve())).then(() => server.forceShutdown()));
  return { url: address.startsWith('unix:') ? address : `http://127.0.0.1:${port}`, seen };
}

function pool(url: string): H2cPool {
  const p = new H2cPool({ url, timeoutMs: 2000, connectTimeoutMs: 1000, maxSessions: 2 });
  cleanups.push(() => p.close());
  return p;
}

describe('h2c pool: gRPC through a real grpc-js server', () => {
  it('unary: message and trailers (grpc-status 0, custom trailer) relayed unchanged', async () => {
    const service = await grpcService('127.0.0.1:0');
    const out = await send(pool(service.url), '/test.Echo/Unary', { headers: [...GRPC_HEADERS, 'x-request-id', 'r-1'], body: Readable.from([grpcFrame('world')]) }).done;
    expect(out.error).toBeUndefined();
    expect(out.status).toBe(200);
    expect(field(out.headers, 'content-type')).toMatch(/^application\/grpc/);
    expect(grpcMessages(out.body)).toEqual(['hello world']);
    expect(field(out.trailers, 'grpc-status')).toBe('0');
    expect(field(out.trailers, 'x-trailer')).toBe('tv');
    expect(service.seen.metadata[0]!.get('x-request-id')).toEqual(['r-1']);
  });

  it('a non-OK status comes back as Trailers-Only (in the head), unchanged', async () => {
    const service = await grpcService('127.0.0.1:0');
    const out = await send(pool(service.url), '/test.Echo/Unary', { headers: GRPC_HEADERS, body: Readable.from([grpcFrame('deny')]) }).done;
    expect(out.error).toBeUndefined();
    expect(out.status).toBe(200);
    expect(field(out.headers, 'grpc-status')).toBe(String(status.PERMISSION_DENIED));
    expect(field(out.headers, 'grpc-message')).toBe('not%20for%20you'); // as grpc-js percent-encoded it: byte for byte
    expect(out.body.length).toBe(0);
  });

  it('grpc-timeout is passed on: the service ends the call DEADLINE_EXCEEDED', async () => {
    const service = await grpcService('127.0.0.1:0');
    const out = await send(pool(service.url), '/test.Echo/Unary', { headers: [...GRPC_HEADERS, 'grpc-timeout', '100m'], body: Readable.from([grpcFrame('slow')]) }).done;
    const grpcStatus = field(out.trailers, 'grpc-status') ?? field(out.headers, 'grpc-status');
    expect(grpcStatus).toBe(String(status.DEADLINE_EXCEEDED));
  });

  it('server streaming: every message, then OK; a stream that fails relays its status in the trailers', async () => {
    const service = await grpcService('127.0.0.1:0');
    const p = pool(service.url);
    const ok = await send(p, '/test.Echo/Stream', { headers: GRPC_HEADERS, body: Readable.from([grpcFrame('m')]) }).done;
    expect(grpcMessages(ok.body)).toEqual(['m0', 'm1', 'm2']);
    expect(field(ok.trailers, 'grpc-status')).toBe('0');
    const failed = await send(p, '/test.Echo/Stream', { headers: GRPC_HEADERS, body: Readable.from([grpcFrame('fail')]) }).done;
    expect(grpcMessages(failed.body)).toEqual(['fail0', 'fail1', 'fail2']);
    expect(field(failed.trailers, 'grpc-status')).toBe(String(status.RESOURCE_EXHAUSTED));
    expect(field(failed.trailers, 'grpc-message')).toBe('out%20of%20ticks');
  });

  it('client streaming: messages sent over time, one answer', async () => {
    const service = await grpcService('127.0.0.1:0');
    const body = new PassThrough();
    const sent = send(pool(service.url), '/test.Echo/Collect', { headers: GRPC_HEADERS, body });
    for (const part of ['a', 'b', 'c']) {
      body.write(grpcFrame(part));
      await sleep(20);
    }
    body.end();
    const out = await sent.done;
    expect(grpcMessages(out.body)).toEqual(['a+b+c']);
    expect(field(out.trailers, 'grpc-status')).toBe('0');
  });

  it('bidi streaming: each answer arrives before the next message is sent', async () => {
    const service = await grpcService('127.0.0.1:0');
    const body = new PassThrough();
    const answers: string[] = [];
    const sent = send(pool(service.url), '/test.Echo/Chat', { headers: GRPC_HEADERS, body, onChunk: (c) => answers.push(...grpcMessages(c)) });
    for (const word of ['one', 'two', 'three']) {
      body.write(grpcFrame(word));
      const expected = answers.length + 1;
      const until = performance.now() + 2000;
      while (answers.length < expected && performance.now() < until) await sleep(5);
    }
    expect(answers).toEqual(['ONE', 'TWO', 'THREE']); // all three answered while the request stream is still open
    body.end();
    const out = await sent.done;
    expect(field(out.trailers, 'grpc-status')).toBe('0');
  });

  it('abort() cancels the call at the service', async () => {
    const service = await grpcService('127.0.0.1:0');
    let ticks = 0;
    const sent = send(pool(service.url), '/test.Echo/Stream', { headers: GRPC_HEADERS, body: Readable.from([grpcFrame('forever')]), onChunk: () => ticks++ });
    const until = performance.now() + 2000;
    while (ticks < 3 && performance.now() < until) await sleep(5);
    sent.call.abort();
    const stop = performance.now() + 2000;
    while (service.seen.cancelled === 0 && performance.now() < stop) await sleep(5);
    expect(service.seen.cancelled).toBe(1);
  });

  it('reaches a grpc-js server on a unix socket', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'h2c-grpc-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const service = await grpcService(`unix:${join(dir, 'grpc.sock')}`);
    const out = await send(pool(service.url), '/test.Echo/Unary', { headers: GRPC_HEADERS, body: Readable.from([grpcFrame('unix')]) }).done;
    expect(grpcMessages(out.body)).toEqual(['hello unix']);
    expect(field(out.trailers, 'grpc-status')).toBe('0');
  });
});
