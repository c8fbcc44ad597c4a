// The service's answer written straight to a raw client connection, where there is no
// ServerResponse: an upgrade request's socket belongs to us once Node hands it over. Same header
// rules as a relayed response (hop-by-hop fields and those the service's Connection names are
// dropped), the same backpressure, and always `connection: close`: after an upgrade the service
// did not switch for, nothing else may be read from that client (SPEC "To the service").
const { STATUS_CODES } = process.getBuiltinModule('node:http'); // not an ESM import: that loads Node's bundled undici (src/admin/admin-server.ts says why)
import type { Duplex } from 'node:stream';
import { connectionListed, isResponseHopByHop } from './headers.ts';

/** The service's headers (name, value…) that go on to the client: none of its hop-by-hop ones. */
export function relayedHeaders(headers: readonly string[]): string[] {
  const listed = connectionListed(headers);
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (!isResponseHopByHop(name) && (listed === undefined || !listed.has(name))) out.push(name, headers[i + 1]!);
  }
  return out;
}

/** A status line and header lines, then the empty line. */
export function rawHead(status: number, headers: readonly string[]): string {
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return head + '\r\n';
}

export class RawResponse {
  private readonly socket: Duplex;
  private waitingDrain = false;

  constructor(socket: Duplex) {
    this.socket = socket;
  }

  /**
   * Content-Length, when the service gave one, passes; otherwise the body (de-chunked by our
   * parser) runs until this connection closes.
   */
  writeHead(status: number, headers: readonly string[]): void {
    this.socket.write(rawHead(status, [...relayedHeaders(headers), 'connection', 'close']), 'latin1');
  }

  /** false: the client is not keeping up; `onDrain` runs when it drained (one wait at a time, however many writes). */
  write(chunk: Buffer, onDrain: () => void): boolean {
    if (this.socket.write(chunk)) return true;
    if (!this.waitingDrain) {
      this.waitingDrain = true;
      this.socket.once('drain', () => {
        this.waitingDrain = false;
        onDrain();
      });
    }
    return false;
  }

  /** The answer is complete: its last bytes, then our end of the connection. */
  end(last: Buffer | undefined): void {
    if (last === undefined) this.socket.end();
    else this.socket.end(last);
  }
}
