#!/usr/bin/env node
// Runs the TypeScript source when it is here (a clone: Node 24 strips types natively), else the
// compiled dist/ (an image or package that ships only dist/). A clone never runs a stale build.
import { existsSync } from 'node:fs';
const [major] = process.versions.node.split('.').map(Number);
if (major < 24) {
  process.stderr.write(
    `portcullis needs Node.js 24 or later; this is ${process.version}.\n` +
      'In a clone, run it through npm, which uses the Node 24 the project pins: `npm start` for the demo, or `npx portcullis <command>`.\n',
  );
  process.exit(1);
}
const source = new URL('../src/cli/main.ts', import.meta.url);
await import(existsSync(source) ? source.href : new URL('../dist/cli/main.js', import.meta.url).href);
