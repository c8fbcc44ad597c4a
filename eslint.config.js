import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'bench/results/', 'coverage/'] },
  js.configs.recommended,
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
    files: ['src/{identity,routing,tokens,decision,pdp,forward,telemetry,config}/**/*.ts', 'src/server.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: ['**/cli/**', '**/admin/**'] }],
    },
  },
);
