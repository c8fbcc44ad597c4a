// The HTTP/2 services of the bench, on node:http2's stream API (the cheapest HTTP/2 server Node
// has, as the HTTP/1.1 upstream is the cheapest `http` one):
//   h2-tls  terminates the same mTLS as Portcullis (client certificate required, ALPN h2) and
//           answers every request with the upstream's 100-byte body: the HTTP/2 "direct" case.
//   grpc    a minimal gRPC unary service in h2c (prior knowledge), the service behind
//           Portcullis (`upstream.protocol: h2c`) and nginx (`grpc_pass`): it reads one
//           length-prefixed message and answers one 100-byte message with grpc-status 0 in the
//           trailers (INVALID_ARGUMENT if the request is not one well-framed message). With
//           `cert`, the same service also terminates mTLS on a second port (`tlsPort`).
// Usage: node h2-services.ts '{"kind":"h2-tls"|"grpc","port":0,"cert":…,"key":…,"ca":…}'
import { createSecureServer, createServer, type Http2Server, type Http2SecureServer, type ServerHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import { readFileSync } from 'node:fs';
import { grpcFrame } from './h2-call.ts';

interface Options {
  kind: 'h2-tls' | 'grpc';
  port: number;
  cert?: string;
  key?: string;
  ca?: string;
}

const options = JSON.parse(process.argv[2] ?? '{}') as Options;
const ANSWER = Buffer.from('x'.repeat(99) + '\n'); // the same 100-byte answer as the HTTP/1.1 upstream
// The gRPC answer: protobuf field 1 (bytes) of 98 bytes = a 100-byte message, framed.
const GRPC_ANSWER = grpcFrame(Buffer.concat([Buffer.from([0x0a, 98]), Buffer.alloc(98, 0x78)]));
const TRAILERS_OK = { 'grpc-status': '0' };
const TRAILERS_BAD = { 'grpc-status': '3', 'grpc-message': 'expected one length-prefixed message' };

function answerHttp(stream: ServerHttp2Stream): void {
  stream.resume();
  stream.respond({ ':status': 200, 'content-type': 'text/plain', 'content-length': ANSWER.length });
  stream.end(ANSWER);
}

function answerGrpc(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
  let received = 0;
  let first: Buffer | undefined;
  stream.on('data', (chunk: Buffer) => {
    received += chunk.length;
    first ??= chunk;
  });
  stream.on('end', () => {
    // The client may reset the stream (or its load generator exit) after the request's last
    // frame and before this runs: respond() on a closed stream throws, and the service would
    // die mid-run (it did, once, on a starved machine: every later gRPC sample then failed).
    if (stream.closed || stream.destroyed) return;
    const declared = first && first.length >= 5 ? first.readUInt32BE(1) : -1;
    const ok = String(headers['content-type'] ?? '').startsWith('application/grpc') && declared >= 0 && received === 5 + declared;
    if (!ok) {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', ...TRAILERS_BAD }, { endStream: true });
      return;
    }
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers(TRAILERS_OK));
    stream.end(GRPC_ANSWER);
  });
}

const onStream = options.kind === 'grpc' ? answerGrpc : answerHttp;
const servers: (Http2Server | Http2SecureServer)[] = [];
const tls = options.cert ? { cert: readFileSync(options.cert), key: readFileSync(options.key!), ca: readFileSync(options.ca!), requestCert: true, rejectUnauthorized: true } : undefined;
if (options.kind === 'grpc') servers.push(createServer());
if (tls) servers.push(createSecureServer(tls));
const ports: number[] = [];
for (const server of servers) {
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    // A stream reset or a session torn down by a client that went away: not the service's failure.
    stream.on('error', () => undefined);
    onStream(stream, headers);
  });
  server.on('sessionError', () => undefined);
  server.listen(server === servers[0] ? options.port : 0, '127.0.0.1', () => {
    const address = server.address();
    ports[servers.indexOf(server)] = typeof address === 'object' && address ? address.port : 0;
    if (ports.filter((p) => p !== undefined).length < servers.length) return;
    process.stdout.write(`${JSON.stringify({ port: ports[0], tlsPort: options.kind === 'grpc' ? ports[1] : undefined })}\n`);
  });
}
process.on('SIGTERM', () => process.exit(0));
