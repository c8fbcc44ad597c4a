import { describe, expect, it } from 'vitest';
import { flatten, relayedFields, requestFields, trailerObject } from '../../../src/forward/h2-fields.ts';

describe('HTTP/2 field rules (RFC 9113 8.2.2, 8.3)', () => {
  it('a request carries our pseudo-headers only, and no connection-specific field', () => {
    const fields = requestFields('POST', '/p', 'svc', [':path', '/evil', ':authority', 'x', 'connection', 'close', 'keep-alive', '1', 'proxy-connection', 'x', 'transfer-encoding', 'chunked', 'upgrade', 'h2c', 'host', 'other', 'te', 'gzip', 'te', 'trailers', 'x-a', '1']);
    expect(fields).toEqual([':method', 'POST', ':scheme', 'http', ':authority', 'svc', ':path', '/p', 'te', 'trailers', 'x-a', '1']);
  });

  it('a relayed head or trailer list has no pseudo-header and no connection-specific field; repeats are kept', () => {
    expect(relayedFields([':status', '200', 'connection', 'close', 'set-cookie', 'a', 'set-cookie', 'b', 'te', 'x', 'grpc-status', '0'])).toEqual(['set-cookie', 'a', 'set-cookie', 'b', 'grpc-status', '0']);
  });

  it('request trailers become the object sendTrailers takes', () => {
    const trailers = trailerObject(['x-a', '1', 'x-a', '2', 'x-a', '3', 'x-b', 'v', ':path', '/no', 'connection', 'close']);
    expect({ ...trailers }).toEqual({ 'x-a': ['1', '2', '3'], 'x-b': 'v' });
  });

  it('flattens a header object, lists as repeated fields', () => {
    expect(flatten({ a: '1', b: ['2', '3'], c: 4, d: undefined })).toEqual(['a', '1', 'b', '2', 'b', '3', 'c', '4']);
  });
});
