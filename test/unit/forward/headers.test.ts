import { describe, expect, it } from 'vitest';
import { acceptableRequestId, isResponseHopByHop, RequestHeaderFilter, xfcc } from '../../../src/forward/headers.ts';

const filter = new RequestHeaderFilter({ tokenHeaders: ['x-jit-grant', 'x-device-posture', 'x-intent'] });

/** Flattens [name, value] pairs the way Node's rawHeaders are laid out. */
function raw(pairs: [string, string][]): string[] {
  return pairs.flat();
}

function names(flat: readonly string[]): string[] {
  return flat.filter((_, i) => i % 2 === 0);
}

describe('RequestHeaderFilter', () => {
  it('keeps ordinary headers with original case, value and order', () => {
    const input = raw([
      ['Host', 'svc'],
      ['Accept', 'application/json'],
      ['X-Custom-Thing', 'One'],
      ['content-type', 'text/plain'],
      ['X-Custom-Thing', 'Two'],
      ['Authorization', 'Bearer abc'],
    ]);
    expect(filter.filter(input, undefined)).toEqual(input);
  });

  it.each(['Connection', 'Keep-Alive', 'Proxy-Connection', 'Transfer-Encoding', 'TE', 'Trailer', 'Upgrade', 'Proxy-Authorization', 'Proxy-Authenticate'])(
    'strips hop-by-hop header %s',
    (name) => {
      const out = filter.filter(raw([['Accept', '*/*'], [name, 'x'], ['X-After', '1']]), undefined);
      expect(out).toEqual(['Accept', '*/*', 'X-After', '1']);
    },
  );

  it.each([
    'x-forwarded-client-cert',
    'X-Forwarded-Client-Cert',
    'X-FORWARDED-CLIENT-CERT',
    'x_forwarded_client_cert',
    'X_Forwarded_Client_Cert',
    'x-forwarded_client-cert',
  ])('strips a spoofed XFCC header spelled %j', (name) => {
    const out = filter.filter(raw([[name, 'By=spiffe://evil;URI=spiffe://example.org/admin'], ['Accept', '*/*']]), undefined);
    expect(out).toEqual(['Accept', '*/*']);
  });

  it.each([
    'X-Forwarded-For',
    'x_forwarded_for',
    'X-Forwarded-Proto',
    'X_FORWARDED_PROTO',
    'X-Forwarded-Host',
    'x_forwarded_host',
    'Forwarded',
    'FORWARDED',
    'X-Jit-Grant-Id',
    'x_jit_grant_id',
  ])('strips identity header %j', (name) => {
    expect(filter.filter(raw([[name, 'spoofed'], ['Keep-Me', 'yes']]), undefined)).toEqual(['Keep-Me', 'yes']);
  });

  it.each(['x-jit-grant', 'X-JIT-Grant', 'x_jit_grant', 'X-Device-Posture', 'x_device_posture', 'X-Intent', 'X_INTENT'])(
    'strips configured token header %j',
    (name) => {
      expect(filter.filter(raw([['A', '1'], [name, 'token'], ['B', '2']]), undefined)).toEqual(['A', '1', 'B', '2']);
    },
  );

  it('strips custom token header names from config, including their "_" spellings', () => {
    const custom = new RequestHeaderFilter({ tokenHeaders: ['X-My-Grant', 'my_posture', 'Why'] });
    const out = custom.filter(
      raw([['x-my-grant', 'g'], ['X_MY_GRANT', 'g'], ['My-Posture', 'p'], ['my_posture', 'p'], ['WHY', 'i'], ['x-jit-grant', 'default-name-not-configured']]),
      undefined,
    );
    expect(out).toEqual(['x-jit-grant', 'default-name-not-configured']);
  });

  it('strips headers named by the inbound Connection header, in any case and "_" spelling', () => {
    const out = filter.filter(
      raw([
        ['Connection', 'keep-alive, X-Secret, x_other'],
        ['x-secret', 's'],
        ['X_Secret', 's'],
        ['X-Other', 'o'],
        ['X-Kept', 'k'],
      ]),
      'keep-alive, X-Secret, x_other',
    );
    expect(out).toEqual(['X-Kept', 'k']);
  });

  it('tolerates odd spacing and empty tokens in Connection', () => {
    const out = filter.filter(raw([['X-A', '1'], ['X-B', '2'], ['X-C', '3']]), ' x-a ,, ,X-B ');
    expect(out).toEqual(['X-C', '3']);
  });

  it('an empty Connection header strips nothing extra', () => {
    expect(filter.filter(raw([['X-A', '1']]), '')).toEqual(['X-A', '1']);
  });

  it('does not strip headers that merely contain a stripped name', () => {
    const input = raw([['X-Forwarded-For-Real', '1'], ['My-Forwarded', '2'], ['X-Jit-Grant-Idx', '3'], ['X-Intent-Note', '4'], ['Tee', '5']]);
    expect(filter.filter(input, undefined)).toEqual(input);
  });

  it('keeps "_" spellings of ordinary headers as sent', () => {
    expect(filter.filter(raw([['Content_Type', 'a'], ['x_custom', 'b']]), undefined)).toEqual(['Content_Type', 'a', 'x_custom', 'b']);
  });

  it('handles a realistic mixed request', () => {
    const out = filter.filter(
      raw([
        ['Host', 'localhost:8443'],
        ['Connection', 'keep-alive'],
        ['X-Forwarded-Client-Cert', 'spoof'],
        ['X-Request-Id', 'abc'],
        ['User-Agent', 'curl/8'],
        ['x-jit-grant', 'eyJ...'],
        ['Forwarded', 'for=1.2.3.4'],
        ['Accept', '*/*'],
      ]),
      'keep-alive',
    );
    expect(names(out)).toEqual(['Host', 'User-Agent', 'Accept']);
  });
});

describe('xfcc', () => {
  it("renders Envoy's By/Hash/URI element", () => {
    expect(xfcc('spiffe://example.org/svc', 'ab'.repeat(32), 'spiffe://example.org/client')).toBe(
      `By=spiffe://example.org/svc;Hash=${'ab'.repeat(32)};URI=spiffe://example.org/client`,
    );
  });
});

describe('isResponseHopByHop', () => {
  it.each(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'trailer', 'te', 'proxy-connection', 'proxy-authenticate'])('%s is hop-by-hop', (name) => {
    expect(isResponseHopByHop(name)).toBe(true);
  });

  it.each(['content-type', 'content-length', 'set-cookie', 'x-request-id'])('%s is end-to-end', (name) => {
    expect(isResponseHopByHop(name)).toBe(false);
  });
});

describe('acceptableRequestId', () => {
  it.each(['abc', 'f47ac10b-58cc-4372-a567-0e02b2c3d479', 'x'.repeat(128), '!~', 'req:1/2'])('keeps %j', (value) => {
    expect(acceptableRequestId(value)).toBe(true);
  });

  it.each([
    ['empty', ''],
    ['too long', 'x'.repeat(129)],
    ['space', 'a b'],
    ['newline', 'a\nb'],
    ['CR', 'a\rb'],
    ['tab', 'a\tb'],
    ['DEL', 'a\x7fb'],
    ['non-ASCII', 'caf\u00e9'],
  ])('replaces a request id that is %s', (_label, value) => {
    expect(acceptableRequestId(value)).toBe(false);
  });

  it.each([undefined, null, 42, ['a', 'b']])('replaces a non-string %j', (value) => {
    expect(acceptableRequestId(value)).toBe(false);
  });
});
