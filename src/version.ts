// The version an operator sees (`portcullis --version`, the start log line): package.json's,
// read once. package.json sits one folder up from both src/ and dist/, so one relative URL serves both.
import { readFileSync } from 'node:fs';

export const VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
