// A fake SPIFFE Workload API that speaks the real protocol over a unix socket (as go-spiffe's
// fakeworkloadapi does): it serves FetchX509SVID streams, refuses calls without the
// `workload.spiffe.io: true` header, and pushes whatever response the test sets.
import type * as Grpc from '@grpc/grpc-js';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { loadWorkloadApi, type X509SvidResponse } from '../../src/identity/workload-api-source.ts';
import type { Issued } from './harness.ts';

export function derChain(...pems: string[]): Buffer {
  return Buffer.concat(pems.map((pem) => new X509Certificate(pem).raw));
}

export function svidResponse(svid: Issued, bundlePem: string, federated: Record<string, string> = {}): X509SvidResponse {
  const spiffeId = /URI:([^,\s]+)/.exec(new X509Certificate(svid.certPem).subjectAltName ?? '')?.[1] ?? '';
  return {
    svids: [{ spiffe_id: spiffeId, x509_svid: derChain(svid.certPem), x509_svid_key: createPrivateKey(svid.keyPem).export({ format: 'der', type: 'pkcs8' }), bundle: derChain(bundlePem) }],
    federated_bundles: Object.fromEntries(Object.entries(federated).map(([domain, pem]) => [`spiffe://${domain}`, derChain(pem)])),
  };
}

export interface FakeWorkloadApi {
  readonly socket: string;
  /** Calls refused for lacking the security header. */
  refused: number;
  /** Sends to every open stream, and to streams opened later. */
  push(response: X509SvidResponse): void;
  /** Ends every open stream (an agent restart, as the client sees it). */
  endStreams(): void;
  close(): Promise<void>;
}

export async function startFakeWorkloadApi(path: string, first?: X509SvidResponse): Promise<FakeWorkloadApi> {
  const { grpc, service } = loadWorkloadApi();
  const server = new grpc.Server();
  const streams = new Set<Grpc.ServerWritableStream<unknown, X509SvidResponse>>();
  let latest = first;
  const api: FakeWorkloadApi = {
    socket: `unix://${path}`,
    refused: 0,
    push(response) {
      latest = response;
      for (const stream of streams) stream.write(response);
    },
    endStreams() {
      for (const stream of streams) stream.end();
      streams.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        api.endStreams();
        server.tryShutdown(() => resolve());
      }),
  };
  server.addService(service.service, {
    FetchX509SVID: (call: Grpc.ServerWritableStream<unknown, X509SvidResponse>) => {
      if (call.metadata.get('workload.spiffe.io')[0] !== 'true') {
        api.refused++;
        call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: 'security header missing from request' });
        return;
      }
      streams.add(call);
      call.on('cancelled', () => streams.delete(call));
      if (latest) call.write(latest);
    },
  });
  await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${path}`, grpc.ServerCredentials.createInsecure(), (error) => (error ? reject(error) : resolve())));
  return api;
}
