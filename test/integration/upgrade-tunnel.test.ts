// The upgrade tunnel against a scripted service and a client that reads slowly (its writes take
// time to complete), so what a fast loopback client would hide shows: bytes still queued for
// the client when the service ends, and how many 'drain' waits a relayed refusal stacks up.
import { createServer, type Server, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { upgradeThrough } from '../../src/forward/upgrade-exchange.ts';
import { UpstreamPool } from '../../src/forward/upstream-pool.ts';

const servers: Server[] = [];
const sockets = new Set<Socket>();
const pools: UpstreamPool[] = [];
afterEach(async () => {
  for (const pool of pools.splice(0)) void pool.close();
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
});

/** A service that answers the first request head on each connection with `answer(socket)`. */
async function scriptedService(answer: (socket: Socket) => void): Promise<{ port: number; connections: () => number }> {
  let connections = 0;
  const server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('error', () => undefined);
    let text = '';
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('latin1');
      if (!text.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      answer(socket);
    };
    socket.on('data', onData);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, connections: () => connections };
}

/**
 * A client whose every write takes `delayMs` to complete (bytes count as received only then); small
 * buffer, so writes report backpressure.
 */
function slowClient(delayMs = 5) {
  const received: Buffer[] = [];
  let ended = false;
  let mostDrainWaits = 0;
  const client = new Duplex({
    writableHighWaterMark: 1024,
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      mostDrainWaits = Math.max(mostDrainWaits, client.listenerCount('drain'));
      const copy = Buffer.from(chunk);
      setTimeout(() => {
        received.push(copy);
        callback();
      }, delayMs);
    },
    final(callback) {
      ended = true;
      callback();
    },
  });
  return { client, text: () => Buffer.concat(received).toString('latin1'), ended: () => ended, mostDrainWaits: () => mostDrainWaits };
}

function open(port: number, client: Duplex, outcome: { status?: string; failure?: string }, method = 'GET', firstBytes = Buffer.alloc(0)): void {
  const pool = new UpstreamPool({ url: `http://127.0.0.1:${port}`, connectTimeoutMs: 1000, timeoutMs: 1000, connections: 8 });
  pools.push(pool);
  upgradeThrough(
    pool,
    client,
    { method, path: '/feed', headers: ['host', 'service'], upgrade: 'x', firstBytes },
    (status) => (outcome.status = status),
    (failure) => (outcome.failure = failure),
  );
}

async function until(test: () => boolean, ms = 3000): Promise<void> {
  for (const deadline = Date.now() + ms; !test() && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 10));
}

describe('upgrade tunnel', () => {
  it('after a 101, a clean end from the service still delivers its last bytes to a slow client', async () => {
    const service = await scriptedService((socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\nconnection: upgrade\r\n\r\n');
      for (let i = 0; i < 20; i++) socket.write(Buffer.alloc(4096, 'a'));
      socket.end('Z'.repeat(1000)); // the last frame, then FIN
    });
    const { client, text, ended } = slowClient();
    const outcome: { status?: string; failure?: string } = {};
    open(service.port, client, outcome);
    await until(ended);
    expect(ended()).toBe(true);
    expect(outcome).toEqual({ status: '101' });
    const body = text().slice(text().indexOf('\r\n\r\n') + 4);
    expect(body.length).toBe(20 * 4096 + 1000);
    expect(body.endsWith('Z'.repeat(1000))).toBe(true);
  });

  it('relays a refusal made of many small chunks to a slow client with one drain wait at a time, completely', async () => {
    const service = await scriptedService((socket) => {
      let body = '';
      for (let i = 0; i < 2000; i++) body += `5\r\nno${String(i % 100).padStart(2, '0')}.\r\n`;
      socket.end(`HTTP/1.1 403 Forbidden\r\ntransfer-encoding: chunked\r\n\r\n${body}0\r\n\r\n`);
    });
    const { client, text, ended, mostDrainWaits } = slowClient(1);
    const outcome: { status?: string; failure?: string } = {};
    open(service.port, client, outcome);
    await until(ended, 10_000);
    expect(outcome).toEqual({ status: '403' });
    expect(text()).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n[\s\S]*connection: close\r\n\r\n/);
    expect(text().slice(text().indexOf('\r\n\r\n') + 4).length).toBe(2000 * 5);
    expect(mostDrainWaits()).toBeLessThanOrEqual(1);
  });

  it('a client gone before the tunnel opens: nothing is sent to the service, nothing reported', async () => {
    const service = await scriptedService((socket) => socket.end('HTTP/1.1 101 Switching Protocols\r\n\r\n'));
    const { client } = slowClient();
    // It left while the decision was being made: its close has already happened.
    await new Promise<void>((resolve) => client.once('close', () => resolve()).destroy());
    const outcome: { status?: string; failure?: string } = {};
    open(service.port, client, outcome);
    await new Promise((r) => setTimeout(r, 200));
    expect(service.connections()).toBe(0);
    expect(outcome).toEqual({});
  });

  it('holds what the client sent after its head until the 101, then sends it first', async () => {
    let heard = '';
    let beforeSwitch: string | undefined;
    // Everything the service reads, from its first byte: the held bytes must not ride with the head.
    const server = createServer((socket) => {
      sockets.add(socket);
      socket.on('data', (chunk: Buffer) => {
        const first = heard === '';
        heard += chunk.toString('latin1');
        if (!first) return;
        setTimeout(() => {
          beforeSwitch = heard.slice(heard.indexOf('\r\n\r\n') + 4);
          socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\nconnection: upgrade\r\n\r\n');
        }, 150);
      });
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { client } = slowClient();
    const outcome: { status?: string; failure?: string } = {};
    open((server.address() as { port: number }).port, client, outcome, 'GET', Buffer.from('first frame'));
    await until(() => heard.endsWith('first frame'));
    expect(beforeSwitch).toBe('');
    expect(heard).toMatch(/^GET \/feed HTTP\/1\.1\r\nhost: service\r\nconnection: upgrade\r\nupgrade: x\r\n\r\nfirst frame$/);
    expect(outcome).toEqual({ status: '101' });
  });
});
