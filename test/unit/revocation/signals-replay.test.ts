// The receiver's jti replay memory (SPEC "Shared Signals receiver"): a jti is refused while its
// SET could still be accepted, forgotten after, and at the hard cap new SETs are refused rather
// than an unexpired jti forgotten.
import { describe, expect, it } from 'vitest';
import { ReplayMemory } from '../../../src/revocation/signals-replay.ts';

describe('ReplayMemory', () => {
  it('a jti is a replay until its window ends, per issuer; then it is forgotten', () => {
    const memory = new ReplayMemory(10);
    const now = 1_000_000;
    expect(memory.remember('https://a', 'j1', now + 600_000, now)).toBe('new');
    expect(memory.remember('https://a', 'j1', now + 600_000, now + 599_999)).toBe('replay');
    expect(memory.remember('https://b', 'j1', now + 600_000, now)).toBe('new');
    // After the window the SET would be refused for its iat anyway: the entry is swept.
    expect(memory.remember('https://a', 'j2', now + 1_300_000, now + 700_000)).toBe('new');
    expect(memory.size).toBe(1);
  });

  it('at the cap it refuses new ones (never forgets one in its window); an expired one makes room', () => {
    const memory = new ReplayMemory(3);
    const now = 5_000_000;
    for (const jti of ['a', 'b', 'c']) expect(memory.remember('i', jti, now + 1_000 * (jti === 'a' ? 1 : 600), now)).toBe('new');
    expect(memory.remember('i', 'd', now + 600_000, now + 10)).toBe('full');
    expect(memory.remember('i', 'a', now + 600_000, now + 10)).toBe('replay');
    expect(memory.size).toBe(3);
    // `a` expired: room for one more, at once (no waiting for the once-a-second sweep).
    expect(memory.remember('i', 'd', now + 600_000, now + 1_001)).toBe('new');
    expect(memory.remember('i', 'e', now + 600_000, now + 1_002)).toBe('full');
    memory.forget('i', 'd');
    expect(memory.remember('i', 'e', now + 600_000, now + 1_003)).toBe('new');
  });
});
