// `npm run docs:config`: writes docs/CONFIG.md from the schema (src/config/reference.ts).
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configReference } from '../config/reference.ts';

export const CONFIG_MD = fileURLToPath(new URL('../../docs/CONFIG.md', import.meta.url));

writeFileSync(CONFIG_MD, configReference());
process.stdout.write(`wrote ${CONFIG_MD}\n`);
