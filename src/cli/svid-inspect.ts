// `portcullis svid inspect FILE.pem [--bundle FILE.pem [--trust-domain TD]]`: what an X509-SVID
// says, and the rule it breaks if any. Without a bundle it still applies every rule the presented
// chain can prove on its own (the leaf's, then CA flag, keyCertSign, issuer order and validity of
// each certificate, as go-spiffe's parser does). With a bundle, the file is the bundle of one
// trust domain: the one `--trust-domain` names, or else the one its CAs name in their
// `spiffe://td` URI SAN; a leaf of another domain is refused, as the proxy refuses it.
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import 'reflect-metadata'; // @peculiar/x509 needs it loaded first
import * as x509 from '@peculiar/x509';
import { checkPresentedChain, leafSpiffeId, parsePemCertificates, SvidError, verifyX509Svid } from '../identity/x509-svid.ts';
import { TrustBundleSet } from '../identity/trust-bundle.ts';
import { parseSpiffeId, parseTrustDomain } from '../identity/spiffe-id.ts';

export const SVID_INSPECT_USAGE = 'portcullis svid inspect FILE.pem [--bundle FILE.pem [--trust-domain TD]]';

export interface InspectOptions {
  readonly bundleFile?: string;
  /** The trust domain whose bundle `bundleFile` is; else read from the bundle's CAs. */
  readonly trustDomain?: string;
}

/** 0: a valid X509-SVID; 1: it breaks a rule (or a file is unreadable); 2: a usage error. */
export interface InspectResult {
  readonly code: 0 | 1 | 2;
  readonly text: string;
}

/** A distinguished name on one line; Node gives `undefined` for an empty Subject or Issuer. */
function nameOf(name: string | undefined): string {
  return name ? name.replaceAll('\n', ', ') : '(empty)';
}

/** The trust domains a bundle's CAs name in `spiffe://td` URI SANs (X509-SVID standard, 4.1). */
function namedTrustDomains(roots: readonly X509Certificate[]): string[] {
  const domains = new Set<string>();
  for (const root of roots) {
    const san = new x509.X509Certificate(root.raw).getExtension(x509.SubjectAlternativeNameExtension);
    for (const name of san?.names.items ?? []) {
      if (name.type !== 'url') continue;
      try {
        domains.add(parseSpiffeId(name.value).trustDomain);
      } catch {
        // Not a SPIFFE ID: it names no trust domain.
      }
    }
  }
  return [...domains];
}

interface Bundle {
  readonly file: string;
  readonly trustDomain: string;
  readonly roots: readonly X509Certificate[];
}

function readBundle(options: InspectOptions): Bundle | InspectResult {
  const file = options.bundleFile!;
  if (options.trustDomain !== undefined) {
    try {
      parseTrustDomain(options.trustDomain);
    } catch (error) {
      return { code: 2, text: `svid inspect: --trust-domain ${JSON.stringify(options.trustDomain)}: ${(error as Error).message}\nusage: ${SVID_INSPECT_USAGE}` };
    }
  }
  let roots: X509Certificate[];
  try {
    roots = parsePemCertificates(readFileSync(file, 'utf8'));
  } catch (error) {
    return { code: 1, text: `${file}: cannot read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` };
  }
  if (roots.length === 0) return { code: 1, text: `invalid: bundle ${file} holds no PEM certificate` };
  if (options.trustDomain !== undefined) return { file, trustDomain: options.trustDomain, roots };
  const named = namedTrustDomains(roots);
  if (named.length === 1) return { file, trustDomain: named[0]!, roots };
  const why = named.length === 0 ? 'its CAs name no trust domain (no spiffe:// URI SAN)' : `its CAs name several trust domains (${named.join(', ')})`;
  return { code: 2, text: `svid inspect: whose bundle is ${file}? ${why}: pass --trust-domain TD\nusage: ${SVID_INSPECT_USAGE}` };
}

export function inspectSvid(file: string, options: InspectOptions = {}): InspectResult {
  if (options.trustDomain !== undefined && options.bundleFile === undefined) {
    return { code: 2, text: `svid inspect: --trust-domain names the domain of --bundle, which is missing\nusage: ${SVID_INSPECT_USAGE}` };
  }
  const bundle = options.bundleFile === undefined ? undefined : readBundle(options);
  if (bundle && 'code' in bundle) return bundle;
  const lines: string[] = [];
  let chain: X509Certificate[];
  try {
    chain = parsePemCertificates(readFileSync(file, 'utf8'));
  } catch (error) {
    return { code: 1, text: `${file}: cannot read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` };
  }
  if (chain.length === 0) return { code: 1, text: `${file}: no PEM certificate found` };
  chain.forEach((cert, index) => {
    lines.push(`${index === 0 ? 'leaf' : `chain[${index}]`}: subject ${nameOf(cert.subject)}; issuer ${nameOf(cert.issuer)}; valid ${new Date(cert.validFrom).toISOString()} to ${new Date(cert.validTo).toISOString()}`);
  });
  try {
    const id = leafSpiffeId(chain[0]!);
    lines.unshift(`spiffe_id: ${id.uri}`, `trust_domain: ${id.trustDomain}`, `expires: ${new Date(chain[0]!.validTo).toISOString()}`, `sha256: ${chain[0]!.fingerprint256.replaceAll(':', '').toLowerCase()}`);
    checkPresentedChain(chain);
    if (bundle) {
      // SPEC step 1: the chain must end at the bundle of the leaf's own trust domain.
      if (bundle.trustDomain !== id.trustDomain) {
        throw new SvidError('unknown_trust_domain', `the leaf is in trust domain ${id.trustDomain}, but ${bundle.file} is the bundle of ${bundle.trustDomain}`);
      }
      verifyX509Svid(chain, new TrustBundleSet(new Map([[bundle.trustDomain, bundle.roots]])));
      lines.push(`verified: chains to ${bundle.file} as the bundle of ${bundle.trustDomain}`);
    } else {
      lines.push('valid: the presented chain keeps the X509-SVID rules (not verified against a bundle: pass --bundle)');
    }
    return { code: 0, text: lines.join('\n') };
  } catch (error) {
    const rejection = (error as { rejection?: string }).rejection;
    lines.push(`invalid${rejection ? ` (${rejection})` : ''}: ${(error as Error).message}`);
    return { code: 1, text: lines.join('\n') };
  }
}
