// This sidecar's SVID and bundles from the SPIFFE Workload API (a SPIRE agent's socket):
// FetchX509SVID is a server stream that sends a new X509SVIDResponse whenever the SVID rotates or
// a bundle changes. Each response is checked as one set, exactly like files (key matches cert,
// valid SVID, a bundle for every accepted trust domain); a bad one is refused and the last good
// set keeps serving. A broken stream is reopened with backoff.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as Grpc from '@grpc/grpc-js';
import type * as ProtoLoader from '@grpc/proto-loader';
import { checkContents, IdentityLoadError, type IdentityMaterial, type SvidSource, type SvidSourceEvents } from './svid-source.ts';

export const WORKLOAD_PROTO = fileURLToPath(new URL('./proto/workload.proto', import.meta.url));

const require = createRequire(import.meta.url);

export interface X509SvidMessage {
  spiffe_id: string;
  x509_svid: Buffer;
  x509_svid_key: Buffer;
  bundle: Buffer;
}

export interface X509SvidResponse {
  svids: X509SvidMessage[];
  federated_bundles: Record<string, Buffer>;
}

/** The Workload API's service definition (also used by tests to serve it). */
export function loadWorkloadApi(): { grpc: typeof Grpc; service: Grpc.ServiceClientConstructor } {
  const grpc = require('@grpc/grpc-js') as typeof Grpc;
  const protoLoader = require('@grpc/proto-loader') as typeof ProtoLoader;
  const definition = protoLoader.loadSync(WORKLOAD_PROTO, { includeDirs: [dirname(WORKLOAD_PROTO)], keepCase: true, defaults: true });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as { SpiffeWorkloadAPI: Grpc.ServiceClientConstructor };
  return { grpc, service: pkg.SpiffeWorkloadAPI };
}

/** Splits concatenated DER certificates (the Workload API's chain and bundle encoding). */
export function splitDer(der: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let offset = 0;
  while (offset < der.length) {
    if (der[offset] !== 0x30 || offset + 2 > der.length) throw new Error('not a DER certificate sequence');
    let length = der[offset + 1]!;
    let header = 2;
    if (length & 0x80) {
      const bytes = length & 0x7f;
      if (bytes < 1 || bytes > 4 || offset + 2 + bytes > der.length) throw new Error('bad DER length');
      length = 0;
      for (let i = 0; i < bytes; i++) length = length * 256 + der[offset + 2 + i]!;
      header += bytes;
    }
    const end = offset + header + length;
    if (end > der.length) throw new Error('truncated DER certificate');
    out.push(der.subarray(offset, end));
    offset = end;
  }
  return out;
}

function pemOf(ders: Buffer[]): string {
  return ders.map((der) => new X509Certificate(der).toString()).join('');
}

/** Turns one X509SVIDResponse into a checked IdentityMaterial (the first SVID is ours). */
export function materialFromResponse(response: X509SvidResponse, trustDomains: readonly string[], now = Date.now()): IdentityMaterial {
  const svid = response.svids[0];
  if (!svid) throw new IdentityLoadError('Workload API: the response carries no SVID');
  let certPem: string;
  let keyPem: string;
  let bundlePem: string;
  const federated = new Map<string, string>();
  try {
    certPem = pemOf(splitDer(svid.x509_svid));
    keyPem = createPrivateKey({ key: svid.x509_svid_key, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }).toString();
    bundlePem = pemOf(splitDer(svid.bundle));
    for (const [key, der] of Object.entries(response.federated_bundles ?? {})) {
      // Keyed by the trust domain's SPIFFE ID ("spiffe://partner.org"); a bare name is accepted too.
      federated.set(key.replace(/^spiffe:\/\//, '').replace(/\/$/, ''), pemOf(splitDer(der)));
    }
  } catch (error) {
    throw new IdentityLoadError(`Workload API: unreadable SVID, key or bundle (${(error as Error).message})`);
  }
  const ownDomain = svid.spiffe_id.replace(/^spiffe:\/\//, '').split('/')[0] ?? '';
  const bundles: Record<string, string> = {};
  for (const domain of trustDomains) {
    if (domain === ownDomain) continue;
    if (!federated.has(domain)) throw new IdentityLoadError(`Workload API: no bundle for trust domain "${domain}" (identity.trustDomains lists it)`);
    bundles[domain] = `Workload API federated bundle of ${domain}`;
  }
  const material = checkContents(
    { certFile: 'Workload API SVID', keyFile: 'Workload API key', bundleFile: 'Workload API bundle', trustDomains, bundles },
    { cert: certPem, key: keyPem, bundle: bundlePem, bundles: federated },
    now,
  );
  if (material.id.uri !== svid.spiffe_id) throw new IdentityLoadError(`Workload API: spiffe_id ${svid.spiffe_id} does not match the SVID's URI SAN ${material.id.uri}`);
  return material;
}

export interface WorkloadApiOptions {
  /** `unix:///path/to/agent.sock` (SPEC's form) or `unix:/path`. */
  readonly socket: string;
  readonly trustDomains: readonly string[];
  readonly maxBackoffMs?: number;
}

export class WorkloadApiSvidSource extends EventEmitter<SvidSourceEvents> implements SvidSource {
  private current: IdentityMaterial | undefined;
  private readonly options: WorkloadApiOptions;
  private readonly client: Grpc.Client & { FetchX509SVID(request: unknown, metadata: Grpc.Metadata): Grpc.ClientReadableStream<X509SvidResponse> };
  private readonly grpc: typeof Grpc;
  private call: Grpc.ClientReadableStream<X509SvidResponse> | undefined;
  private backoffMs = 250;
  private stopped = false;
  private retry: NodeJS.Timeout | undefined;
  /** The last problem, for the startup error when no SVID ever arrives. */
  lastProblem = 'no response yet';

  constructor(options: WorkloadApiOptions) {
    super();
    this.options = options;
    const { grpc, service } = loadWorkloadApi();
    this.grpc = grpc;
    this.client = new service(options.socket, grpc.credentials.createInsecure()) as unknown as typeof this.client;
    this.open();
  }

  get material(): IdentityMaterial {
    if (!this.current) throw new IdentityLoadError(`Workload API at ${this.options.socket}: no SVID yet (${this.lastProblem})`);
    return this.current;
  }

  /** Resolves with the first good set, or rejects after `timeoutMs` naming the last problem. */
  ready(timeoutMs: number): Promise<IdentityMaterial> {
    if (this.current) return Promise.resolve(this.current);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('update', onUpdate);
        reject(new IdentityLoadError(`identity.workloadApiSocket ${this.options.socket}: no SVID within ${timeoutMs} ms (${this.lastProblem})`));
      }, timeoutMs);
      const onUpdate = (material: IdentityMaterial) => {
        clearTimeout(timer);
        resolve(material);
      };
      this.once('update', onUpdate);
    });
  }

  private open(): void {
    if (this.stopped) return;
    const metadata = new this.grpc.Metadata();
    // Workload API servers refuse calls without this header (SPIFFE Workload API, 6.2).
    metadata.set('workload.spiffe.io', 'true');
    const call = this.client.FetchX509SVID({}, metadata);
    this.call = call;
    call.on('data', (response: X509SvidResponse) => {
      this.backoffMs = 250;
      try {
        this.current = materialFromResponse(response, this.options.trustDomains);
      } catch (error) {
        this.lastProblem = (error as Error).message;
        this.emit('error', error instanceof IdentityLoadError ? error : new IdentityLoadError((error as Error).message));
        return;
      }
      this.emit('update', this.current);
    });
    const reopen = (why: string) => {
      if (this.call !== call || this.stopped) return;
      this.call = undefined;
      this.lastProblem = why;
      this.retry = setTimeout(() => this.open(), this.backoffMs);
      this.retry.unref();
      this.backoffMs = Math.min(this.backoffMs * 2, this.options.maxBackoffMs ?? 30_000);
    };
    call.on('error', (error: Grpc.ServiceError) => reopen(`stream failed: ${error.details || error.message}`));
    call.on('end', () => reopen('stream ended'));
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
    this.call?.cancel();
    this.client.close();
  }
}
