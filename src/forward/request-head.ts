// The request head we send to the service, for forwarded requests and for upgrades alike,
// written as latin1 with only what latin1 carries byte for byte.
import { badTarget, badValueWritten, isToken } from './http-syntax.ts';

/**
 * The request line and header lines, each ending in CRLF (the caller adds its own framing lines
 * and the final CRLF), with a Host of `defaultHost` if none was given; undefined if any part
 * could not be sent safely.
 */
export function requestLines(method: string, path: string, headers: readonly string[], defaultHost: string): string | undefined {
  if (!isToken(method) || path === '' || badTarget(path)) return undefined;
  let head = method + ' ' + path + ' HTTP/1.1\r\n';
  let hasHost = false;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const value = headers[i + 1]!;
    if (!isToken(name) || badValueWritten(value)) return undefined;
    if (name.length === 4 && name.toLowerCase() === 'host') hasHost = true;
    head += name + ': ' + value + '\r\n';
  }
  return hasHost ? head : head + 'host: ' + defaultHost + '\r\n';
}
