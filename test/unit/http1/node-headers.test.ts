// src/http1/node-headers.ts against Node's own IncomingMessage (lib/_http_incoming.js): replacing
// Node's HTTP server must not change one header value the decision path reads (grant, cookie,
// Host, Content-Type, Authorization), so for random field lists, with repeats and mixed case,
// our object and `req.headers` must be equal, key for key.
import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { headersObject } from '../../../src/http1/node-headers.ts';

/** What Node's server hands a handler as `req.headers` for these raw fields. */
function nodeHeaders(raw: string[]): Record<string, unknown> {
  const message = new IncomingMessage(new Socket()) as IncomingMessage & { _addHeaderLines(raw: string[], n: number): void };
  message._addHeaderLines(raw, raw.length);
  return { ...message.headers };
}

/** Names the decision path reads, Node's special cases, and some it joins. */
const NAMES = [
  'set-cookie', 'cookie', 'host', 'content-type', 'authorization', 'x-jit-grant', 'x-device-posture', 'x-intent',
  'content-length', 'user-agent', 'referer', 'proxy-authorization', 'if-modified-since', 'from', 'location',
  'max-forwards', 'retry-after', 'etag', 'last-modified', 'server', 'age', 'expires', 'accept', 'x-request-id',
  'constructor', 'toString', 'hasOwnProperty', 'transfer-encoding', 'connection', 'set-cookie2', 'cookies', 'hosts',
];

/** Each letter in upper or lower case. */
const mixedCase = (name: string) =>
  fc.array(fc.boolean(), { minLength: name.length, maxLength: name.length }).map((upper) => [...name].map((c, i) => (upper[i] ? c.toUpperCase() : c.toLowerCase())).join(''));

const fieldName = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...NAMES).chain(mixedCase) },
  { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}$/).filter((n) => n.toLowerCase() !== '__proto__') },
);
// Values as the parser hands them out: visible ASCII, inner spaces and tabs, obs-text, possibly empty.
const fieldValue = fc.stringMatching(/^[\x21-\x7e\x80-\xff]([\x20-\x7e\t\x80-\xff]{0,20}[\x21-\x7e\x80-\xff])?$|^$/);

describe('headersObject (node-headers.ts) = IncomingMessage.headers', () => {
  it('gives the same object as Node for random field lists with repeats and mixed case', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fieldName, fieldValue), { maxLength: 24 }), (pairs) => {
        const raw = pairs.flat();
        const ours = headersObject(raw);
        expect({ ...ours }).toStrictEqual(nodeHeaders(raw));
        // Same key order too: anything that serialises the object sees the same thing.
        expect(Object.keys(ours)).toEqual(Object.keys(nodeHeaders(raw)));
      }),
      { numRuns: 500 },
    );
  });

  it('joins repeats the way the decision path relies on: a grant sent twice is one joined value, cookies with "; ", set-cookie an array, Host first-only', () => {
    const raw = ['X-Jit-Grant', 'a.b.c', 'x-jit-grant', 'd.e.f', 'Cookie', 'a=1', 'COOKIE', 'b=2', 'Set-Cookie', 'x=1', 'set-cookie', 'y=2', 'Host', 'one', 'host', 'two', 'Authorization', 'Bearer 1', 'authorization', 'Bearer 2'];
    expect({ ...headersObject(raw) }).toStrictEqual({ 'x-jit-grant': 'a.b.c, d.e.f', cookie: 'a=1; b=2', 'set-cookie': ['x=1', 'y=2'], host: 'one', authorization: 'Bearer 1' });
    expect(nodeHeaders(raw)).toStrictEqual({ ...headersObject(raw) });
  });

  it('keeps a field named __proto__ as a field (Node loses it into the prototype) and never touches Object.prototype', () => {
    const raw = ['__proto__', 'polluted', '__Proto__', 'again', 'constructor', 'c'];
    const ours = headersObject(raw);
    expect(Object.getPrototypeOf(ours)).toBeNull();
    expect(Object.getOwnPropertyDescriptor(ours, '__proto__')?.value).toBe('polluted, again');
    expect(ours.constructor).toBe('c');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
    // Node's object has no own __proto__ key: the one case where we differ, on purpose.
    expect(Object.keys(nodeHeaders(raw))).not.toContain('__proto__');
  });
});
