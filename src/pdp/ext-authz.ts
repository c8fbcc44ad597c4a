// Envoy ext_authz over gRPC: envoy.service.auth.v3.Authorization/Check with an AttributeContext
// filled as Envoy fills it (source principal = peer SPIFFE ID; request.http = method, path,
// headers with the token headers removed), plus our facts in context_extensions, so OPA's Envoy
// plugin and other ext_authz servers work unchanged. Status OK allows; any other code denies;
// a failed call (UNAVAILABLE, deadline, reset) is a PDP error value, never a rejection.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { dirname } from 'node:path';
import type * as Grpc from '@grpc/grpc-js';
import type * as ProtoLoader from '@grpc/proto-loader';
import { pdpError, type Pdp, type PdpInput, type PdpResult } from './pdp.ts';

export const EXT_AUTHZ_PROTO = fileURLToPath(new URL('./proto/ext_authz.proto', import.meta.url));

// gRPC and protobuf cost about 25 MiB of memory once loaded: only a proxy configured with
// `pdp.kind: ext-authz` loads them (both are CommonJS, so a synchronous require works).
const require = createRequire(import.meta.url);
let grpcModule: typeof Grpc | undefined;
export function grpcLib(): typeof Grpc {
  return (grpcModule ??= require('@grpc/grpc-js') as typeof Grpc);
}

export function loadExtAuthzPackage(): Grpc.GrpcObject {
  const protoLoader = require('@grpc/proto-loader') as typeof ProtoLoader;
  const definition = protoLoader.loadSync(EXT_AUTHZ_PROTO, { includeDirs: [dirname(EXT_AUTHZ_PROTO)], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  return grpcLib().loadPackageDefinition(definition);
}

interface CheckResponse {
  status?: { code?: number; message?: string };
}

type CheckClient = Grpc.Client & {
  Check(request: unknown, options: Grpc.CallOptions, callback: (error: Grpc.ServiceError | null, response?: CheckResponse) => void): Grpc.ClientUnaryCall;
};

export class ExtAuthzPdp implements Pdp {
  readonly kind = 'ext-authz';
  private readonly client: CheckClient;
  private readonly timeoutMs: number;
  private readonly strippedHeaders: ReadonlySet<string>;
  private readonly ownId: string;

  constructor(address: string, timeoutMs: number, tokenHeaders: readonly string[], ownId: string) {
    const grpc = grpcLib();
    const pkg = loadExtAuthzPackage() as unknown as { envoy: { service: { auth: { v3: { Authorization: Grpc.ServiceClientConstructor } } } } };
    this.client = new pkg.envoy.service.auth.v3.Authorization(address, grpc.credentials.createInsecure(), {
      'grpc.keepalive_time_ms': 30_000,
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 2_000,
    }) as unknown as CheckClient;
    this.timeoutMs = timeoutMs;
    this.strippedHeaders = new Set(tokenHeaders.map((h) => h.toLowerCase()));
    this.ownId = ownId;
  }

  checkRequest(input: PdpInput): unknown {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(input.http?.headers ?? {})) {
      const key = name.toLowerCase();
      if (value === undefined || this.strippedHeaders.has(key) || this.strippedHeaders.has(key.replaceAll('_', '-'))) continue;
      headers[key] = Array.isArray(value) ? value.join(',') : value;
    }
    const extensions: Record<string, string> = { action: input.action, resource: input.resource, route: input.route, sensitivity: input.sensitivity };
    if (input.intent !== undefined) extensions.intent = input.intent;
    if (input.grant) extensions.grant = JSON.stringify(input.grant.claims);
    if (input.posture) extensions.posture = JSON.stringify(input.posture.posture);
    const seconds = Math.floor(input.nowMs / 1000);
    return {
      attributes: {
        source: {
          principal: input.subject,
          address: input.http ? { socket_address: { address: input.http.peerAddress, port_value: input.http.peerPort } } : undefined,
        },
        destination: { principal: this.ownId },
        request: {
          time: { seconds: String(seconds), nanos: (input.nowMs % 1000) * 1_000_000 },
          http: {
            id: input.requestId,
            method: input.method,
            headers,
            path: input.http?.path ?? '',
            host: input.http?.host ?? '',
            scheme: 'https',
            protocol: 'HTTP/1.1',
            size: '-1',
          },
        },
        context_extensions: extensions,
      },
    };
  }

  evaluate(input: PdpInput): Promise<PdpResult> {
    const request = this.checkRequest(input);
    return new Promise((resolve) => {
      const answer = (error: Grpc.ServiceError | null, response?: CheckResponse): void => {
        const { status } = grpcLib();
        if (error) {
          resolve(pdpError(error.code === status.DEADLINE_EXCEEDED ? 'timeout' : 'error', `gRPC ${status[error.code] ?? error.code}: ${error.details}`));
          return;
        }
        const code = response?.status?.code ?? 0;
        const detail = `ext_authz: ${status[code] ?? code}${response?.status?.message ? ` ${response.status.message.slice(0, 200)}` : ''}`;
        resolve(code === 0 ? { kind: 'allow', ttlMs: undefined, detail } : { kind: 'deny', reason: 'policy_denied', ttlMs: undefined, detail });
      };
      try {
        this.client.Check(request, { deadline: Date.now() + this.timeoutMs }, answer);
      } catch (error) {
        // grpc-js throws, rather than calling back, on a channel already closed (a call that was
        // still on its way when a reload closed this generation's client): a failed call too.
        resolve(pdpError('error', `gRPC: ${(error as Error).message}`));
      }
    });
  }

  async close(): Promise<void> {
    this.client.close();
  }
}
