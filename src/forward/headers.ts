// SPEC "To the service": which inbound headers never reach the service, and what is added.
// Names are compared lowercased with `_` read as `-`, so `x_forwarded_client_cert` is caught too.

// RFC 9110 7.6.1 hop-by-hop fields, plus `expect` (answered here) and `content-length`: the
// framing toward the service is written by our client from what was actually read, so no
// forwarded header (nor a `Connection: content-length` trick) can decide where a request ends.
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'content-length', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-authenticate', 'expect'];
const IDENTITY = ['x-forwarded-client-cert', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded', 'x-jit-grant-id', 'x-request-id'];

export interface HeaderRules {
  /** The grant, posture and intent header names from config. */
  readonly tokenHeaders: readonly string[];
}

function canonical(name: string): string {
  return name.toLowerCase().replaceAll('_', '-');
}

export class RequestHeaderFilter {
  private readonly stripped: ReadonlySet<string>;

  constructor(rules: HeaderRules) {
    this.stripped = new Set([...HOP_BY_HOP, ...IDENTITY, ...rules.tokenHeaders.map(canonical)]);
  }

  /**
   * Copies `rawHeaders` (name, value, name, value…) into a flat list for the upstream, without
   * the stripped names and without any named by the inbound `Connection` header.
   */
  filter(rawHeaders: readonly string[], connectionHeader: string | undefined): string[] {
    const extra = connectionHeader ? new Set(connectionHeader.split(',').map((t) => canonical(t.trim()))) : undefined;
    const out: string[] = [];
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i]!;
      const key = name.includes('_') ? canonical(name) : name.toLowerCase();
      if (this.stripped.has(key) || extra?.has(key)) continue;
      out.push(name, rawHeaders[i + 1]!);
    }
    return out;
  }
}

/** Envoy's XFCC element: `By=<own ID>;Hash=<hex SHA-256 of the peer leaf>;URI=<peer ID>`. */
export function xfcc(ownId: string, peerLeafSha256Hex: string, peerId: string): string {
  return `By=${ownId};Hash=${peerLeafSha256Hex};URI=${peerId}`;
}

const RESPONSE_HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate']);

export function isResponseHopByHop(name: string): boolean {
  return RESPONSE_HOP_BY_HOP.has(name);
}

/** Field names the service's `Connection` header declares hop-by-hop (beyond the fixed ones). */
export function connectionListed(headers: readonly string[]): Set<string> | undefined {
  let listed: Set<string> | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] !== 'connection') continue;
    const value = headers[i + 1]!;
    // Nearly every answer says just this, on every request: nothing to split.
    if (value === 'keep-alive' || value === 'close') continue;
    for (const token of value.split(',')) {
      const name = token.trim().toLowerCase();
      if (name !== '' && name !== 'close' && name !== 'keep-alive') (listed ??= new Set()).add(name);
    }
  }
  return listed;
}

/** A request id is kept if it is short printable text; otherwise a new one is made. */
export function acceptableRequestId(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= 128 && /^[\x21-\x7e]+$/.test(value);
}
