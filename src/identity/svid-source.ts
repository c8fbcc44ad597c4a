// This sidecar's own SVID and the trust bundles, read from files (as spiffe-helper or the SPIFFE
// CSI driver writes them). Cert, key and bundles are read together and checked as a set; a
// half-written or mismatched set is refused and the last good one keeps serving.
import { createHash, createPrivateKey, type X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import { leafSpiffeId, parsePemCertificates } from './x509-svid.ts';
import type { SpiffeId } from './spiffe-id.ts';
import { TrustBundleSet } from './trust-bundle.ts';

export interface SvidFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly bundleFile: string;
  readonly trustDomains: readonly string[];
  /** Federated bundles by trust domain; other trust domains use `bundleFile`. */
  readonly bundles: Readonly<Record<string, string>>;
}

/** One consistent set: own SVID, its key, and the bundles, as loaded together. */
export interface IdentityMaterial {
  readonly id: SpiffeId;
  readonly certPem: string;
  readonly keyPem: string;
  readonly chain: readonly X509Certificate[];
  readonly notAfter: Date;
  readonly bundles: TrustBundleSet;
}

export class IdentityLoadError extends Error {
  override readonly name = 'IdentityLoadError';
}

function read(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new IdentityLoadError(`${what} ${file}: cannot read (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** Reads and checks one set of files; throws IdentityLoadError naming the file and the rule. */
export function loadIdentityFiles(files: SvidFiles, now = Date.now()): IdentityMaterial {
  const certPem = read(files.certFile, 'identity.certFile');
  const keyPem = read(files.keyFile, 'identity.keyFile');
  const chain = parsePemCertificates(certPem);
  const leaf = chain[0];
  if (!leaf) throw new IdentityLoadError(`identity.certFile ${files.certFile}: no PEM certificate found`);
  let id: SpiffeId;
  try {
    id = leafSpiffeId(leaf);
  } catch (error) {
    throw new IdentityLoadError(`identity.certFile ${files.certFile}: ${(error as Error).message}`);
  }
  if (now > Date.parse(leaf.validTo)) throw new IdentityLoadError(`identity.certFile ${files.certFile}: SVID expired at ${leaf.validTo}`);
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch {
    throw new IdentityLoadError(`identity.keyFile ${files.keyFile}: not a readable PEM private key`);
  }
  if (!leaf.checkPrivateKey(key)) throw new IdentityLoadError(`identity.keyFile ${files.keyFile}: key does not match the certificate in ${files.certFile}`);

  const byDomain = new Map<string, X509Certificate[]>();
  const defaultRoots = parsePemCertificates(read(files.bundleFile, 'identity.bundleFile'));
  if (defaultRoots.length === 0) throw new IdentityLoadError(`identity.bundleFile ${files.bundleFile}: no PEM certificate found`);
  for (const domain of files.trustDomains) {
    const file = files.bundles[domain];
    const roots = file ? parsePemCertificates(read(file, `identity.bundles.${domain}`)) : defaultRoots;
    if (roots.length === 0) throw new IdentityLoadError(`identity.bundles.${domain} ${file}: no PEM certificate found`);
    const notCa = roots.find((cert) => !cert.ca);
    if (notCa) throw new IdentityLoadError(`bundle for ${domain}: certificate ${notCa.subject.replaceAll('\n', ', ')} is not a CA`);
    byDomain.set(domain, roots);
  }
  return { id, certPem, keyPem, chain, notAfter: new Date(leaf.validTo), bundles: new TrustBundleSet(byDomain) };
}

function digestOf(files: SvidFiles): string {
  const hash = createHash('sha256');
  for (const file of [files.certFile, files.keyFile, files.bundleFile, ...Object.values(files.bundles)]) {
    try {
      hash.update(readFileSync(file));
    } catch {
      hash.update(`missing:${file}`);
    }
    hash.update('\0');
  }
  return hash.digest('hex');
}

export interface SvidSourceEvents {
  update: [IdentityMaterial];
  error: [IdentityLoadError];
}

/**
 * Polls the files and emits `update` with each new good set, `error` for a bad one (once per
 * distinct content). Polling, not fs.watch: atomic renames and the CSI driver's symlink swaps
 * are both seen, and a poll that catches a half-written file simply tries again next time.
 */
export class FileSvidSource extends EventEmitter<SvidSourceEvents> {
  private current: IdentityMaterial;
  private lastDigest: string;
  private timer: NodeJS.Timeout | undefined;
  private readonly files: SvidFiles;

  constructor(files: SvidFiles) {
    super();
    this.files = files;
    this.lastDigest = digestOf(files);
    this.current = loadIdentityFiles(files);
  }

  get material(): IdentityMaterial {
    return this.current;
  }

  start(intervalMs: number): void {
    this.timer = setInterval(() => this.poll(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Checks the files now; returns true when a new set was taken. */
  poll(): boolean {
    const digest = digestOf(this.files);
    if (digest === this.lastDigest) return false;
    this.lastDigest = digest;
    try {
      this.current = loadIdentityFiles(this.files);
    } catch (error) {
      if (!(error instanceof IdentityLoadError)) throw error;
      this.emit('error', error);
      return false;
    }
    this.emit('update', this.current);
    return true;
  }
}
