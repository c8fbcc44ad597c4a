// The answer to an upgrade request (WebSocket): refusals written raw on the client's socket, which
// no longer belongs to the HTTP server; once the service switches, a splice both ways; a cut
// closes the tunnel (SPEC "Streams": an upgraded tunnel is closed).
import type { Duplex } from 'node:stream';
import type { Denial } from '../decision/denial.ts';
import { rawDenialResponse } from '../forward/deny-response.ts';
import type { CutReason } from './open-exchanges.ts';
import type { Reply, ReplyEvents, UpstreamHandle } from './reply.ts';

export class UpgradeReply<X> implements Reply {
  readonly kind = 'upgrade';
  call: UpstreamHandle | undefined;
  bytesSent = 0;
  started = false;
  readonly socket: Duplex;
  /** The bytes the client sent after the upgrade request's head (the new protocol's first). */
  readonly firstBytes: Buffer;
  private readonly x: X;
  private readonly events: ReplyEvents<X>;

  constructor(x: X, socket: Duplex, firstBytes: Buffer, events: ReplyEvents<X>) {
    this.x = x;
    this.socket = socket;
    this.firstBytes = firstBytes;
    this.events = events;
  }

  deny(denied: Denial, requestId: string): void {
    if (this.started || this.socket.destroyed) {
      this.socket.destroy();
      return;
    }
    this.started = true;
    this.events.answered(this.x, String(denied.status));
    const answer = rawDenialResponse(denied, requestId);
    this.bytesSent += answer.length - answer.indexOf('\r\n\r\n') - 4;
    this.socket.end(answer);
  }

  cut(_reason: CutReason, _requestId: string): void {
    // Mid-tunnel there is no HTTP left to say why: the tunnel closes, and the service's side with it.
    this.call?.abort();
    this.socket.destroy();
  }
}
