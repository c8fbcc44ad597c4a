// The V8 flags the image runs with (Dockerfile ENV NODE_OPTIONS) are the ones the README's deploy
// section and bench/README.md's "Memory and start-up" figures were taken with.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');

describe('Node flags of the image', () => {
  it('the Dockerfile sets --max-semi-space-size=2 in NODE_OPTIONS, and the READMEs say so', () => {
    const env = /^ENV NODE_OPTIONS="([^"]*)"$/m.exec(read('Dockerfile'));
    expect(env?.[1]).toBe('--max-semi-space-size=2');
    expect(read('README.md')).toContain('NODE_OPTIONS="--max-semi-space-size=2"');
    expect(read('bench/README.md')).toContain('--max-semi-space-size=2');
  });
});
