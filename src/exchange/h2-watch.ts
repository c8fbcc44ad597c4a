// The HTTP/2 session facts node:http2 does not report (SPEC "Protocols and streams"): streams
// nghttp2 refused before we saw them, for portcullis_bad_requests_total, and a client preface or
// header block that never completes, for limits.headersTimeout.
import type { Http2Session } from 'node:http2';

/**
 * What node:http2 does not tell us about a session: nghttp2 resets malformed streams (RFC 9113
 * §8.1.1, §8.2, §8.3) and streams past the limit itself, and a HEADERS frame whose header block
 * never completes (RFC 9113 §6.2, §6.10) is invisible until it does. Both show only as stream
 * ids nghttp2 processed (`lastProcStreamID`) that never reached 'stream'. Peers open streams in
 * increasing odd ids (RFC 9113 §5.1.1); one that skips ids has those counted as refused too.
 */
export class H2Watch {
  /** The highest stream id delivered to onStream (-1: none yet, the first is 1). */
  private last = -1;
  private preface = false;
  private quietMs = 0;
  /** nghttp2 reset a stream we had (DATA past content-length, RFC 9113 §8.1.1); one that dies with its session was counted there. */
  readonly streamError = (error: NodeJS.ErrnoException): void => {
    if (error.code === 'ERR_HTTP2_ERROR' && !this.session.destroyed) this.count('h2_stream', 1);
  };

  private readonly session: Http2Session;
  private readonly count: (reason: string, n: number) => void;

  constructor(session: Http2Session, count: (reason: string, n: number) => void) {
    this.session = session;
    this.count = count;
    // RFC 9113 §3.4: the client preface ends with its SETTINGS frame.
    session.once('remoteSettings', () => (this.preface = true));
  }

  delivered(id: number): void {
    if (id > this.last + 2) this.count('h2_stream', (id - this.last) / 2 - 1);
    this.last = id;
    this.quietMs = 0;
  }

  /** Counts the streams nghttp2 began after the last one we saw; returns how many. */
  settle(): number {
    if (this.session.destroyed) return 0;
    const processed = this.session.state.lastProcStreamID ?? 0;
    const unseen = processed > this.last ? (processed - this.last) >> 1 : 0;
    this.last = Math.max(this.last, processed);
    if (unseen > 0) this.count('h2_stream', unseen);
    return unseen;
  }

  /**
   * Nothing heard for `period` (min of headersTimeout and idleTimeout). `timeout`: the client
   * preface or a header block still incomplete after headersTimeout (the HTTP/1.1 listener's
   * slow-head limit: a slowloris holds no connection longer over HTTP/2); `idle`: no stream
   * open for idleTimeout. An open stream (a quiet gRPC watch) keeps the connection; its grounds
   * bound it instead.
   */
  quiet(period: number, idleTimeout: number, openStreams: number): 'timeout' | 'idle' | undefined {
    if (!this.preface || (openStreams === 0 && this.settle() > 0)) {
      // (A stream begun since is counted as refused by settle(): the connection has been silent
      // since, so its header block is hanging, or it was refused and nothing followed.)
      this.count('timeout', 1);
      return 'timeout';
    }
    if (openStreams > 0) return undefined;
    this.quietMs += period;
    return this.quietMs >= idleTimeout ? 'idle' : undefined;
  }
}
