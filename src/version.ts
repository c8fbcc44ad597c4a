// The version this build answers to (`portcullis --version`, `portcullis_build_info{version}`):
// package.json's, read once when the module loads. src/ and dist/ both sit one level below the
// package root, so the same relative path serves a clone and a built image.
import { readFileSync } from 'node:fs';

function readVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' && pkg.version !== '' ? pkg.version : 'unknown';
  } catch {
    // A copy shipped without its package.json still runs; it just cannot say which it is.
    return 'unknown';
  }
}

export const VERSION: string = readVersion();
