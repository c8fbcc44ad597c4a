// The bench's helper processes: the upstream (plain HTTP, or terminating mTLS itself for the
// "direct" case), nginx's auth_request service, and an AuthZEN PDP. Each answers at once.
// Usage: node servers.ts '{"kind":"upstream"|"upstream-tls"|"auth"|"authzen","port":0,...}'
import { createServer as createHttp } from 'node:http';
import { createServer as createHttps } from 'node:https';
import { readFileSync } from 'node:fs';

interface Options {
  kind: 'upstream' | 'upstream-tls' | 'auth' | 'authzen';
  port: number;
  cert?: string;
  key?: string;
  ca?: string;
}

const options = JSON.parse(process.argv[2] ?? '{}') as Options;
const ANSWER = Buffer.from('x'.repeat(99) + '\n'); // the 100-byte upstream answer
const AUTHZEN_ALLOW = Buffer.from('{"decision":true}');

const handler = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => {
  req.resume();
  switch (options.kind) {
    case 'auth':
      res.writeHead(204);
      res.end();
      return;
    case 'authzen':
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': AUTHZEN_ALLOW.length, 'cache-control': 'max-age=60' });
        res.end(AUTHZEN_ALLOW);
      });
      return;
    default:
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': ANSWER.length });
      res.end(ANSWER);
  }
};

const server =
  options.kind === 'upstream-tls'
    ? createHttps({ cert: readFileSync(options.cert!), key: readFileSync(options.key!), ca: readFileSync(options.ca!), requestCert: true, rejectUnauthorized: true, keepAliveTimeout: 60_000 }, handler)
    : createHttp({ keepAliveTimeout: 60_000 }, handler);
server.listen(options.port, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`${JSON.stringify({ port: typeof address === 'object' && address ? address.port : 0 })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
