// What the proxy knows about one client connection, worked out once (STYLE.md: per connection,
// not per request): the peer's verified SVID, its XFCC value, whether the current identity.allow
// admits it, and the deadline its certificate sets for the whole connection.
import type { PeerIdentity } from '../identity/peer-verifier.ts';
import type { SpiffePatternSet } from '../identity/spiffe-pattern.ts';
import { xfcc } from '../forward/headers.ts';
import type { Bound, CutReason } from './open-exchanges.ts';

export class ClientConnection implements Bound {
  /** Undefined when the peer was refused (the connection is being destroyed). */
  readonly peer: PeerIdentity | undefined;
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** SPEC step 1: the connection is closed when the peer's SVID expires. */
  readonly deadlineMs: number;
  readonly deadlineReason: CutReason = 'svid_expired';
  readonly jti = undefined;
  readonly onPosture = false;
  private readonly close: () => void;
  /** HTTP/2 streams open on this connection (an idle session with none is closed). */
  openStreams = 0;
  /** OpenExchanges' place for it (Bound). */
  openList: Bound[] | undefined = undefined;
  openSlot = -1;
  private xfccBy = '';
  private xfccValue = '';
  private allowChecked: SpiffePatternSet | undefined;
  private allowedNow = false;

  constructor(peer: PeerIdentity | undefined, remoteAddress: string, remotePort: number, close: () => void) {
    this.peer = peer;
    this.remoteAddress = remoteAddress;
    this.remotePort = remotePort;
    this.close = close;
    this.deadlineMs = peer ? peer.svid.notAfter.getTime() : 0;
  }

  get peerId(): string {
    return this.peer?.svid.id.uri ?? '';
  }


  /**
   * Whether `allow` (the current generation's identity.allow) admits the peer. Checked against
   * each generation once: after a reload the new list applies to the next request (SPEC step 1).
   */
  allowedBy(allow: SpiffePatternSet): boolean {
    if (allow !== this.allowChecked) {
      this.allowChecked = allow;
      this.allowedNow = this.peer !== undefined && allow.matches(this.peer.svid.id.uri);
    }
    return this.allowedNow;
  }

  /** The XFCC value for the service, made on the first request (again only if our own ID changed). */
  xfcc(ownId: string): string {
    if (this.xfccBy !== ownId) {
      this.xfccBy = ownId;
      this.xfccValue = xfcc(ownId, this.peer!.svid.leafSha256Hex, this.peer!.svid.id.uri);
    }
    return this.xfccValue;
  }

  cut(_reason: CutReason): void {
    this.close();
  }
}
