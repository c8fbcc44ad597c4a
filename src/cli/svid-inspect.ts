// `portcullis svid inspect FILE.pem [--bundle FILE.pem]`: what an X509-SVID says, and the rule
// it breaks if any.
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { leafSpiffeId, parsePemCertificates, verifyX509Svid } from '../identity/x509-svid.ts';
import { TrustBundleSet } from '../identity/trust-bundle.ts';

export function inspectSvid(file: string, bundleFile: string | undefined): { ok: boolean; text: string } {
  const lines: string[] = [];
  let chain: X509Certificate[];
  try {
    chain = parsePemCertificates(readFileSync(file, 'utf8'));
  } catch (error) {
    return { ok: false, text: `${file}: cannot read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` };
  }
  if (chain.length === 0) return { ok: false, text: `${file}: no PEM certificate found` };
  chain.forEach((cert, index) => {
    lines.push(`${index === 0 ? 'leaf' : `chain[${index}]`}: subject ${cert.subject.replaceAll('\n', ', ')}; issuer ${cert.issuer.replaceAll('\n', ', ')}; valid ${new Date(cert.validFrom).toISOString()} to ${new Date(cert.validTo).toISOString()}`);
  });
  try {
    const id = leafSpiffeId(chain[0]!);
    lines.unshift(`spiffe_id: ${id.uri}`, `trust_domain: ${id.trustDomain}`, `expires: ${new Date(chain[0]!.validTo).toISOString()}`, `sha256: ${chain[0]!.fingerprint256.replaceAll(':', '').toLowerCase()}`);
    if (bundleFile) {
      const roots = parsePemCertificates(readFileSync(bundleFile, 'utf8'));
      if (roots.length === 0) {
        lines.push(`invalid: bundle ${bundleFile} holds no PEM certificate`);
        return { ok: false, text: lines.join('\n') };
      }
      verifyX509Svid(chain, new TrustBundleSet(new Map([[id.trustDomain, roots]])));
      lines.push(`verified: chains to ${bundleFile} as the bundle of ${id.trustDomain}`);
    } else if (Date.now() > Date.parse(chain[0]!.validTo)) {
      lines.push(`invalid: leaf certificate expired at ${chain[0]!.validTo}`);
      return { ok: false, text: lines.join('\n') };
    }
    return { ok: true, text: lines.join('\n') };
  } catch (error) {
    const rejection = (error as { rejection?: string }).rejection;
    lines.push(`invalid${rejection ? ` (${rejection})` : ''}: ${(error as Error).message}`);
    return { ok: false, text: lines.join('\n') };
  }
}
