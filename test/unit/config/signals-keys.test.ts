// signals.* (SPEC "Config file", "Shared Signals receiver"): off when absent, defaults, file
// paths resolved beside the config, and every bad value answered with a message naming the key.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configFiles } from './config-files.ts';
import { configReference, RESTART } from '../../../src/config/reference.ts';

const { dir, load, problems } = configFiles('signals-keys');

const IDP = `{ issuer: https://idp.example.org, jwksFile: idp-jwks.json, audience: https://portcullis.example.org }`;

describe('signals.*', () => {
  it('absent: no receiver; present: 0.0.0.0:9902, /ssf/events, files resolved beside the config', () => {
    expect(load('').signals).toBeUndefined();
    const config = load(`signals: { bearerTokenFile: ssf-token, transmitters: [${IDP}] }\n`);
    expect(config.signals).toEqual({
      listen: { address: '0.0.0.0', port: 9902 },
      path: '/ssf/events',
      bearerTokenFile: join(dir, 'ssf-token'),
      transmitters: [{ issuer: 'https://idp.example.org', jwksFile: join(dir, 'idp-jwks.json'), audience: 'https://portcullis.example.org' }],
    });
  });

  it('bad values name their key', () => {
    expect(problems('signals: { transmitters: [] }\n')).toEqual(['signals.transmitters: list at least one transmitter']);
    expect(problems('signals: { transmitters: [{ issuer: https://idp.example.org, audience: a }] }\n')).toEqual(['signals.transmitters[0]: give exactly one of jwksFile, jwksUrl']);
    expect(problems('signals: { transmitters: [{ issuer: https://idp.example.org, jwksFile: a.json, jwksUrl: "https://idp.example.org/jwks", audience: a }] }\n')).toEqual([
      'signals.transmitters[0]: give exactly one of jwksFile, jwksUrl',
    ]);
    expect(problems(`signals: { transmitters: [${IDP}, ${IDP}] }\n`)).toEqual(['signals.transmitters[1].issuer: duplicate transmitter issuer "https://idp.example.org" (a SET is matched to its transmitter by iss)']);
    expect(problems(`signals: { transmitters: [{ issuer: https://idp.example.org, jwksFile: a.json }] }\n`)).toEqual([expect.stringMatching(/^signals\.transmitters\[0\]\.audience: /)]);
    expect(problems(`signals: { path: ssf, transmitters: [${IDP}] }\n`)).toEqual(['signals.path: expected a path like "/ssf/events"']);
    expect(problems(`signals: { bearer: x, transmitters: [${IDP}] }\n`)).toEqual(['signals.bearer: unknown key']);
    expect(problems(`admin: { port: 9902 }\nsignals: { transmitters: [${IDP}] }\n`)).toEqual(['signals.listen.port: 9902 is also admin.port: the Shared Signals receiver needs its own listener']);
    expect(problems(`listen: { port: 7000 }\nsignals: { listen: { port: 7000 }, transmitters: [${IDP}] }\n`)).toEqual(['signals.listen.port: 7000 is also listen.port: the Shared Signals receiver needs its own listener']);
  });

  it('needs a restart (the listener is bound once), and docs/CONFIG.md says so', () => {
    expect(RESTART.signals).toMatch(/bound once/);
    expect(configReference()).toMatch(/signals\.transmitters\[\]\.audience/);
  });
});
