// PDP servers that speak the real wire protocols, started in the test: an AuthZEN endpoint, an
// OPA-shaped Data API, and a grpc-js Authorization/Check server. Each records what it received
// and answers as the test says.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { loadExtAuthzPackage } from '../../src/pdp/ext-authz.ts';

export interface JsonPdpServer {
  readonly url: string;
  readonly server: Server;
  readonly received: { path: string; headers: IncomingMessage['headers']; body: unknown }[];
  answer: (body: unknown, req: IncomingMessage, res: ServerResponse) => void;
  close(): Promise<void>;
}

export async function startJsonPdp(answer: JsonPdpServer['answer']): Promise<JsonPdpServer> {
  const pdp: JsonPdpServer = {
    url: '',
    received: [],
    answer,
    server: createServer((req, res) => {
      let text = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (text += chunk));
      req.on('end', () => {
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          body = text;
        }
        pdp.received.push({ path: req.url ?? '', headers: req.headers, body });
        pdp.answer(body, req, res);
      });
    }),
    close: () =>
      new Promise<void>((resolve) => {
        pdp.server.closeAllConnections();
        pdp.server.close(() => resolve());
      }),
  };
  await new Promise<void>((resolve) => pdp.server.listen(0, '127.0.0.1', resolve));
  const address = pdp.server.address();
  (pdp as { url: string }).url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  return pdp;
}

export function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

export interface GrpcPdpServer {
  readonly address: string;
  readonly received: unknown[];
  answer: (request: unknown) => { code: number; message?: string } | grpc.ServiceError;
  close(): Promise<void>;
}

export async function startGrpcPdp(answer: GrpcPdpServer['answer'], port = 0): Promise<GrpcPdpServer> {
  const pkg = loadExtAuthzPackage() as unknown as { envoy: { service: { auth: { v3: { Authorization: grpc.ServiceClientConstructor } } } } };
  const server = new grpc.Server();
  const pdp: GrpcPdpServer = {
    address: '',
    received: [],
    answer,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
  server.addService(pkg.envoy.service.auth.v3.Authorization.service, {
    Check: (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      pdp.received.push(call.request);
      const result = pdp.answer(call.request);
      if ('details' in result && (result as grpc.ServiceError).code !== undefined && result instanceof Error) callback(result);
      else callback(null, { status: result });
    },
  });
  const bound = await new Promise<number>((resolve, reject) => server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (error, p) => (error ? reject(error) : resolve(p))));
  (pdp as { address: string }).address = `127.0.0.1:${bound}`;
  return pdp;
}
