// Preloaded (`node --import`) by test/integration/start-modules.test.ts into `portcullis run`:
// records every module the process loads, ESM and CommonJS alike (module.registerHooks sees both),
// and on SIGUSR2 writes them, with the built-ins Node itself loaded (process.moduleLoadList), to
// the file PORTCULLIS_MODULES_OUT names. A signal, not a timer: the test sends it once the proxy
// listens, so the list is "what start loaded", whatever the machine's speed.
import { writeFileSync } from 'node:fs';
import { registerHooks } from 'node:module';

const out = process.env.PORTCULLIS_MODULES_OUT;
if (!out) throw new Error('start-modules-hook: PORTCULLIS_MODULES_OUT is not set');
const loaded = new Set<string>();
registerHooks({
  load(url, context, next) {
    loaded.add(url);
    return next(url, context);
  },
});
process.on('SIGUSR2', () => {
  const builtins = (process as unknown as { moduleLoadList: string[] }).moduleLoadList;
  writeFileSync(out, JSON.stringify({ urls: [...loaded], builtins }));
});
