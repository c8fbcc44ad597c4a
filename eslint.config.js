import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// eslint reads the default export of its config file.
// eslint-disable-next-line no-restricted-syntax
export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'bench/results/', 'coverage/'] },
  js.configs.recommended,
  { files: ['bin/**/*.js'], languageOptions: { globals: { URL: 'readonly', process: 'readonly' } } },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-syntax': ['error', { selector: 'ExportDefaultDeclaration', message: 'Use named exports.' }],
    },
  },
  {
    // The hot path never imports admin or CLI code (STYLE.md: dependencies point down).
    files: ['src/{identity,routing,tokens,decision,pdp,forward,telemetry,config,exchange}/**/*.ts', 'src/server.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: ['**/cli/**', '**/admin/**'] }],
    },
  },
);
