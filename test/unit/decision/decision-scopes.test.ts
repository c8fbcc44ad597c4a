import { describe, expect, it } from 'vitest';
import { DecisionScopes, decisionKey } from '../../../src/decision/decision-cache.ts';

const PEER = 'spiffe://example.org/ns/prod/sa/support-bot';

describe('DecisionScopes (short refs in decision-cache keys)', () => {
  it('gives the same route, action and peer the same ref, and every other scope its own', () => {
    const scopes = new DecisionScopes();
    const a = scopes.ref('refund', 'orders.refund', PEER);
    // Fresh strings with the same text, as each request brings them.
    expect(scopes.ref(['ref', 'und'].join(''), 'orders.' + 'refund', `${PEER}`)).toBe(a);
    const others = [scopes.ref('refund2', 'orders.refund', PEER), scopes.ref('refund', 'orders.read', PEER), scopes.ref('refund', 'orders.refund', PEER + '2')];
    expect(new Set([a, ...others]).size).toBe(4);
    for (const ref of [a, ...others]) expect(ref).not.toContain('\n');
  });

  it('never shares a ref between generations (each DecisionPath holds its own scopes)', () => {
    expect(new DecisionScopes().ref('refund', 'orders.refund', PEER)).not.toBe(new DecisionScopes().ref('refund', 'orders.refund', PEER));
  });

  it('starts over past its bound with new refs, never reusing one', () => {
    const scopes = new DecisionScopes();
    const first = scopes.ref('refund', 'orders.refund', PEER);
    const seen = new Set([first]);
    for (let i = 0; i < 5000; i++) seen.add(scopes.ref('refund', 'orders.refund', `${PEER}-${i}`));
    expect(seen.size).toBe(5001);
    // The memo started over: the first scope gets a ref no other scope ever had.
    const again = scopes.ref('refund', 'orders.refund', PEER);
    expect(seen.has(again)).toBe(false);
  });

  it('keeps keys of different resources, grants, postures and intents apart', () => {
    const keys = [decisionKey('1', 'order:4', '2', '', ''), decisionKey('1', 'order:42', '', '', ''), decisionKey('1', 'order:4', '', '2', ''), decisionKey('1', 'order:4', '', '', '2'), decisionKey('1', 'order:4', '2', '3', 'x')];
    expect(new Set(keys).size).toBe(keys.length);
  });
});
