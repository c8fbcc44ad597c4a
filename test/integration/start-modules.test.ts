// The module list loaded at start is budgeted (issue 15, "Keep it"): `portcullis run` with the
// embedded PDP, SVID files and grant and posture issuers loads exactly the packages
// test/budgets/start-modules.json names. A new package fails, naming it (load it lazily where the
// config needs it, or add it to the budget on purpose); a budgeted one no longer loaded fails too,
// so the budget stays a true list. Names only, never times or bytes: it cannot flake.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issuerKeyPair } from '../../src/cli/dev-pki.ts';
import { configYaml, createPki, DEFAULT_ROUTES, type Pki } from '../support/harness.ts';
import { MAIN } from '../support/child-proxy.ts';

const HOOK = fileURLToPath(new URL('../support/start-modules-hook.ts', import.meta.url));
const BUDGET_FILE = fileURLToPath(new URL('../budgets/start-modules.json', import.meta.url));

interface Budget {
  readonly packages: readonly string[];
  /** Packages that must never load at start, whatever `packages` says, and why. */
  readonly forbidden: Readonly<Record<string, string>>;
  /** Node's own modules (process.moduleLoadList names) that must not load at start, and why. */
  readonly forbiddenBuiltins: Readonly<Record<string, string>>;
}

/** The package a module URL belongs to (`@scope/name` or `name`), or `(portcullis)` for our own code; undefined for node: built-ins. */
function packageOf(url: string): string | undefined {
  if (url.startsWith('node:')) return undefined;
  const inPackage = /.*\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  return inPackage ? inPackage[1] : '(portcullis)';
}

interface Loaded {
  readonly urls: string[];
  readonly builtins: string[];
}

/** Starts `portcullis run`, waits until it listens, and asks the preloaded hook for what it loaded. */
async function modulesAtStart(configFile: string, out: string): Promise<Loaded> {
  const child = spawn(process.execPath, ['--import', HOOK, MAIN, 'run', '--config', configFile], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, PORTCULLIS_MODULES_OUT: out, PORTCULLIS_LOG_LEVEL: 'info' },
  });
  let stderr = '';
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`portcullis run did not start:\n${stderr}`)), 20_000);
      child.on('exit', (code) => reject(new Error(`portcullis run exited with ${code}:\n${stderr}`)));
      child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
        stderr += chunk;
        // The start line (cli/instance.ts) is logged once both listeners are bound.
        if (/"listen":"[^"]*:\d+","admin":"[^"]*:\d+"/.test(stderr)) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    child.kill('SIGUSR2');
    const deadline = Date.now() + 10_000;
    while (!existsSync(out)) {
      if (Date.now() > deadline) throw new Error(`the start-modules hook wrote nothing:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return JSON.parse(readFileSync(out, 'utf8')) as Loaded;
  } finally {
    child.kill('SIGTERM');
  }
}

describe('modules loaded at start', () => {
  let pki: Pki;
  let loaded: Loaded;
  const budget = JSON.parse(readFileSync(BUDGET_FILE, 'utf8')) as Budget;

  beforeAll(async () => {
    pki = await createPki();
    const issuer = await issuerKeyPair('k1');
    pki.write('jwks.json', issuer.jwks);
    const config = pki.write(
      'portcullis.yaml',
      configYaml(pki, 'http://127.0.0.1:9', DEFAULT_ROUTES) +
        `grants: { issuers: [{ issuer: "https://jit.example.org", jwksFile: jwks.json }] }
posture: { issuers: [{ issuer: "https://posture.example.org", jwksFile: jwks.json }], maxAge: 15m }
audit: { file: audit.log }
`,
    );
    loaded = await modulesAtStart(config, join(pki.dir, 'modules.json'));
  }, 40_000);
  afterAll(() => pki.cleanup());

  it('groups module URLs by package', () => {
    expect(packageOf('file:///app/node_modules/zod/v4/core/core.js')).toBe('zod');
    expect(packageOf('file:///app/node_modules/prom-client/node_modules/@opentelemetry/api/build/src/index.js')).toBe('@opentelemetry/api');
    expect(packageOf('file:///app/src/cli/main.ts')).toBe('(portcullis)');
    expect(packageOf('node:fs')).toBeUndefined();
  });

  it('loads exactly the budgeted packages (test/budgets/start-modules.json)', () => {
    const packages = new Set(loaded.urls.map(packageOf).filter((name) => name !== undefined));
    // The hook saw the start: our own code and the config parser at least.
    expect(packages.has('(portcullis)')).toBe(true);
    expect(packages.has('yaml')).toBe(true);
    packages.delete('(portcullis)');
    const budgeted = new Set(budget.packages);
    const added = [...packages].filter((name) => !budgeted.has(name)).sort();
    const gone = [...budgeted].filter((name) => !packages.has(name)).sort();
    expect(added, `new packages loaded at start: ${added.join(', ')}. Load them only when the config needs them, or add them to ${BUDGET_FILE} on purpose.`).toEqual([]);
    expect(gone, `budgeted packages no longer loaded at start: ${gone.join(', ')}. Remove them from ${BUDGET_FILE}.`).toEqual([]);
  });

  it('loads none of the forbidden packages or built-ins, and the budget lists none of them', () => {
    const packages = new Set(loaded.urls.map(packageOf));
    const forbidden = Object.keys(budget.forbidden);
    expect(forbidden.filter((name) => packages.has(name)), 'forbidden packages loaded at start (the budget says why each must not)').toEqual([]);
    expect(forbidden.filter((name) => budget.packages.includes(name)), 'the budget lists a forbidden package').toEqual([]);
    const builtins = new Set(loaded.builtins.map((entry) => entry.replace(/^NativeModule /, '')));
    expect(builtins.has('fs')).toBe(true); // the list is real
    expect(Object.keys(budget.forbiddenBuiltins).filter((name) => builtins.has(name)), 'forbidden Node built-ins loaded at start (the budget says why)').toEqual([]);
  });
});
