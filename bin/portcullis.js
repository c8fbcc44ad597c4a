#!/usr/bin/env node
// Runs the compiled CLI when built (`npm run build`), else the TypeScript source directly
// (Node 24 strips types natively for files outside node_modules).
import { existsSync } from 'node:fs';
const built = new URL('../dist/cli/main.js', import.meta.url);
await import(existsSync(built) ? built.href : new URL('../src/cli/main.ts', import.meta.url).href);
