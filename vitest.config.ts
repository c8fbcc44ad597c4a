import { defineConfig } from 'vitest/config';

export const config = defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
  },
});
// vitest reads the default export of its config file.
// eslint-disable-next-line no-restricted-syntax
export default config;
