import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MAX_BATCH, parseJsonRpc } from '../../../src/routing/json-rpc.ts';

const parse = (text: string) => parseJsonRpc(Buffer.from(text));

describe('parseJsonRpc', () => {
  it('reads a call: method, {rpc.method}, {rpc.name} from params.name or params.uri, id', () => {
    expect(parse('{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"lookup_order","arguments":{"id":42}}}')).toEqual({
      ok: true,
      batch: false,
      calls: [{ method: 'tools/call', actionMethod: 'tools.call', name: 'lookup_order', id: 7 }],
    });
    expect(parse('{"jsonrpc":"2.0","id":"a","method":"resources/read","params":{"uri":"file:///x"}}')).toMatchObject({ calls: [{ name: 'file:///x', id: 'a' }] });
    expect(parse('{"jsonrpc":"2.0","method":"notifications/initialized"}')).toMatchObject({ calls: [{ name: '-', id: undefined, actionMethod: 'notifications.initialized' }] });
    expect(parse('{"jsonrpc":"2.0","id":null,"method":"ping","params":[1,2]}')).toMatchObject({ calls: [{ name: '-', id: null }] });
  });

  it('reads a batch of calls and notifications', () => {
    const body = JSON.stringify([{ jsonrpc: '2.0', id: 1, method: 'tools/list' }, { jsonrpc: '2.0', method: 'notifications/progress' }]);
    expect(parse(body)).toMatchObject({ ok: true, batch: true, calls: [{ method: 'tools/list' }, { method: 'notifications/progress' }] });
  });

  it.each([
    ['not JSON', 'hello'],
    ['bytes after the value', '{"jsonrpc":"2.0","method":"a"} x'],
    ['not an object', '42'],
    ['no jsonrpc', '{"method":"a","id":1}'],
    ['jsonrpc 1.0', '{"jsonrpc":"1.0","method":"a","id":1}'],
    ['a method that is not a string', '{"jsonrpc":"2.0","method":5,"id":1}'],
    ['an empty method', '{"jsonrpc":"2.0","method":"","id":1}'],
    ['a control in the method', '{"jsonrpc":"2.0","method":"a\\u0000b","id":1}'],
    ['an object id', '{"jsonrpc":"2.0","method":"a","id":{}}'],
    ['params a string', '{"jsonrpc":"2.0","method":"a","params":"x"}'],
    ['an empty batch', '[]'],
    ['a bad call in a batch', '[{"jsonrpc":"2.0","method":"a"},{"method":"b"}]'],
    ['a duplicate key', '{"jsonrpc":"2.0","method":"tools/list","method":"tools/call","id":1}'],
    ['a duplicate key spelled with an escape', '{"jsonrpc":"2.0","method":"a","params":{"name":"x","n\\u0061me":"y"},"id":1}'],
    ['a raw control in a string', '{"jsonrpc":"2.0","method":"a\nb","id":1}'],
    ['a truncated body', '{"jsonrpc":"2.0","method":"a","params":{"name":"x"'],
    ['a bad escape', '{"jsonrpc":"2.0","method":"a\\x","id":1}'],
    ['a leading zero', '{"jsonrpc":"2.0","method":"a","id":01}'],
  ])('refuses %s', (_what, text) => {
    expect(parse(text).ok).toBe(false);
  });

  it('keeps the id of a single bad call, for the JSON-RPC error body', () => {
    expect(parse('{"jsonrpc":"2.0","method":5,"id":9}')).toEqual({ ok: false, problem: 'method must be a string', id: 9 });
  });

  it(`refuses a batch over ${MAX_BATCH} calls, nesting over 64, and invalid UTF-8`, () => {
    const call = { jsonrpc: '2.0', method: 'ping' };
    expect(parse(JSON.stringify(Array.from({ length: MAX_BATCH }, () => call))).ok).toBe(true);
    expect(parse(JSON.stringify(Array.from({ length: MAX_BATCH + 1 }, () => call)))).toMatchObject({ ok: false, problem: 'a batch of more than 100 calls' });
    const nested = (n: number) => `{"jsonrpc":"2.0","method":"a","params":${'['.repeat(n)}${']'.repeat(n)}}`;
    expect(parse(nested(63)).ok).toBe(true);
    expect(parse(nested(64))).toMatchObject({ ok: false, problem: 'nested deeper than 64' });
    expect(parseJsonRpc(Buffer.from([0x7b, 0xff, 0x7d]))).toMatchObject({ ok: false, problem: 'the body is not valid UTF-8' });
  });

  it('agrees with JSON.parse on what is JSON (for inputs without duplicate keys)', () => {
    fc.assert(
      fc.property(fc.json(), (text) => {
        let standard = true;
        try {
          JSON.parse(text);
        } catch {
          standard = false;
        }
        const ours = parse(`{"jsonrpc":"2.0","method":"m","params":[${text}]}`);
        const duplicates = /"([^"\\]*)":[^]*"\1":/.test(text);
        if (!duplicates) expect(ours.ok).toBe(standard);
      }),
      { numRuns: 300 },
    );
  });
});
