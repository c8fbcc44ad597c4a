// `portcullis dev-pki` (ours, for the README's "Your own service in ten minutes"): writes a
// throwaway CA, an X509-SVID per workload, grant and posture issuer keys and a README.txt, so a
// service of one's own can sit behind the proxy without openssl. Never for production: the keys
// are written in the clear and the CA's own key is not kept.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DevCa, issuerKeyPair } from './dev-pki.ts';
import { parseSpiffeId, parseTrustDomain } from '../identity/spiffe-id.ts';
import { UsageError } from './usage.ts';

/** Long enough to come back to tomorrow, short enough that a forgotten dev CA dies by itself. */
const VALIDITY_MS = 30 * 24 * 3_600_000;
export const GRANT_KID = 'grant-1';
export const POSTURE_KID = 'posture-1';

export interface DevPkiOptions {
  readonly out: string;
  readonly trustDomain: string;
  /** `NAME` (spiffe://TD/ns/default/sa/NAME) or a path `/ns/x/sa/y`; the first is the server. */
  readonly workloads: readonly string[];
  readonly force: boolean;
}

export interface DevPkiWorkload {
  /** The files' base name: NAME, or the last segment of a path. */
  readonly name: string;
  readonly spiffeId: string;
}

/** NAME or /path to a SPIFFE ID and file name; a usage error naming the argument otherwise. */
export function workloadId(trustDomain: string, argument: string): DevPkiWorkload {
  const path = argument.startsWith('/') ? argument : `/ns/default/sa/${argument}`;
  const name = path.split('/').at(-1) ?? '';
  const spiffeId = `spiffe://${trustDomain}${path}`;
  try {
    parseSpiffeId(spiffeId);
  } catch (error) {
    throw new UsageError(`dev-pki: --workload ${JSON.stringify(argument)}: ${(error as Error).message}`, 'dev-pki');
  }
  // File names come from the argument: letters, digits, "-", "_", "." only, never a path trick.
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new UsageError(`dev-pki: --workload ${JSON.stringify(argument)}: expected a name of letters, digits, "-", "_", "." (or a path ending in one)`, 'dev-pki');
  return { name, spiffeId };
}

function readme(trustDomain: string, workloads: readonly DevPkiWorkload[], notAfter: Date): string {
  const lines = [
    'Written by `portcullis dev-pki`. A THROWAWAY PKI for trying and testing Portcullis: NEVER FOR PRODUCTION.',
    'The private keys below sit in the clear on this disk, and anyone holding them is these workloads.',
    `Everything here expires ${notAfter.toISOString()}; the CA's own key was not kept (run dev-pki again for more workloads).`,
    '',
    `bundle.pem                   the CA certificate of trust domain ${trustDomain} (identity.bundleFile; curl --cacert)`,
    ...workloads.flatMap((w, i) => [
      `${`${w.name}.pem`.padEnd(28)} X509-SVID of ${w.spiffeId}${i === 0 ? ' (the server: also DNS name localhost; identity.certFile)' : ' (curl --cert)'}`,
      `${`${w.name}_key.pem`.padEnd(28)} its private key${i === 0 ? ' (identity.keyFile)' : ' (curl --key)'}`,
    ]),
    `grant-issuer_key.pem         the grant issuer's private key: portcullis grant mint --key grant-issuer_key.pem --kid ${GRANT_KID} ...`,
    'grant-issuer-jwks.json       its public key as a JWKS (grants.issuers[].jwksFile)',
    `posture-issuer_key.pem       the posture issuer's private key: portcullis posture mint --key posture-issuer_key.pem --kid ${POSTURE_KID} ...`,
    'posture-issuer-jwks.json     its public key as a JWKS (posture.issuers[].jwksFile)',
    '',
  ];
  return lines.join('\n');
}

export async function writeDevPki(options: DevPkiOptions): Promise<{ files: string[]; workloads: DevPkiWorkload[]; summary: string }> {
  let trustDomain: string;
  try {
    trustDomain = parseTrustDomain(options.trustDomain);
  } catch (error) {
    throw new UsageError(`dev-pki: --trust-domain ${JSON.stringify(options.trustDomain)}: ${(error as Error).message}`, 'dev-pki');
  }
  const workloads = options.workloads.map((w) => workloadId(trustDomain, w));
  const names = new Set<string>();
  for (const w of workloads) {
    if (names.has(w.name)) throw new UsageError(`dev-pki: two workloads would both be written as ${w.name}.pem`, 'dev-pki');
    names.add(w.name);
  }
  const reserved = ['bundle', 'grant-issuer', 'posture-issuer'].find((r) => names.has(r) || names.has(`${r}_key`));
  if (reserved) throw new UsageError(`dev-pki: a workload may not be named ${reserved} (that file name is taken)`, 'dev-pki');

  const out = resolve(options.out);
  const fileNames = ['bundle.pem', ...workloads.flatMap((w) => [`${w.name}.pem`, `${w.name}_key.pem`]), 'grant-issuer_key.pem', 'grant-issuer-jwks.json', 'posture-issuer_key.pem', 'posture-issuer-jwks.json', 'README.txt'];
  // Refuse before generating anything: a half-overwritten PKI (new CA, old SVIDs) never verifies.
  const existing = fileNames.filter((name) => existsSync(join(out, name)));
  if (existing.length > 0 && !options.force) {
    throw new Error(`dev-pki: ${out} already has ${existing.join(', ')}; pass --force to overwrite them`);
  }

  const notAfter = new Date(Date.now() + VALIDITY_MS);
  const ca = await DevCa.create(trustDomain, { notAfter });
  const contents = new Map<string, string>([['bundle.pem', ca.bundlePem]]);
  for (const [index, w] of workloads.entries()) {
    const svid = await ca.svid(w.spiffeId.slice(`spiffe://${trustDomain}`.length), { notAfter, ...(index === 0 ? { dns: ['localhost'] } : {}) });
    contents.set(`${w.name}.pem`, svid.certPem).set(`${w.name}_key.pem`, svid.keyPem);
  }
  const grant = await issuerKeyPair(GRANT_KID);
  const posture = await issuerKeyPair(POSTURE_KID);
  contents.set('grant-issuer_key.pem', grant.privateKeyPem).set('grant-issuer-jwks.json', grant.jwks);
  contents.set('posture-issuer_key.pem', posture.privateKeyPem).set('posture-issuer-jwks.json', posture.jwks);
  contents.set('README.txt', readme(trustDomain, workloads, notAfter));

  mkdirSync(out, { recursive: true });
  for (const name of fileNames) {
    // Without --force, `wx` also refuses a file that appeared since the check above.
    writeFileSync(join(out, name), contents.get(name)!, { mode: name.endsWith('_key.pem') ? 0o600 : 0o644, flag: options.force ? 'w' : 'wx' });
  }
  const summary = [
    `Wrote a throwaway dev PKI (never for production) to ${out}:`,
    ...fileNames.map((name) => `  ${name}`),
    ...workloads.map((w, i) => `${i === 0 ? 'server' : 'client'} ${w.name}: ${w.spiffeId}`),
    `expires ${notAfter.toISOString()}; see README.txt there for what each file is.`,
    '',
  ].join('\n');
  return { files: fileNames.map((name) => join(out, name)), workloads, summary };
}
