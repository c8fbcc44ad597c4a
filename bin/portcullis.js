#!/usr/bin/env node
// Runs the TypeScript source when it is here (a clone: Node 24 strips types natively), else the
// compiled dist/ (an image or package that ships only dist/). A clone never runs a stale build.
import { existsSync } from 'node:fs';
const source = new URL('../src/cli/main.ts', import.meta.url);
await import(existsSync(source) ? source.href : new URL('../dist/cli/main.js', import.meta.url).href);
