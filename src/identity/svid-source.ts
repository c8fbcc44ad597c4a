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

function certificates(pem: string, what: string): X509Certificate[] {
  try {
    return parsePemCertificates(pem);
  } catch (error) {
    // A PEM block that is complete but not a certificate (a corrupted or half-replaced file).
    throw new IdentityLoadError(`${what}: not a readable PEM certificate (${(error as Error).message})`);
  }
}

/** The contents of every file of a set, read once: what is checked is what was hashed. */
export interface FileContents {
  readonly cert: string;
  readonly key: string;
  readonly bundle: string;
  readonly bundles: ReadonlyMap<string, string>;
}

function readContents(files: SvidFiles): FileContents {
  const bundles = new Map<string, string>();
  for (const [domain, file] of Object.entries(files.bundles)) bundles.set(domain, read(file, `identity.bundles.${domain}`));
  return {
    cert: read(files.certFile, 'identity.certFile'),
    key: read(files.keyFile, 'identity.keyFile'),
    bundle: read(files.bundleFile, 'identity.bundleFile'),
    bundles,
  };
}

/** Reads and checks one set of files; throws IdentityLoadError naming the file and the rule. */
export function loadIdentityFiles(files: SvidFiles, now = Date.now()): IdentityMaterial {
  return checkContents(files, readContents(files), now);
}

/** Checks one set (cert, key, bundles) as PEM text; `files` names its parts in error messages. */
export function checkContents(files: SvidFiles, contents: FileContents, now: number): IdentityMaterial {
  const certPem = contents.cert;
  const keyPem = contents.key;
  const chain = certificates(certPem, `identity.certFile ${files.certFile}`);
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
  let matches: boolean;
  try {
    matches = leaf.checkPrivateKey(key);
  } catch {
    matches = false; // a key of another type than the certificate's
  }
  if (!matches) throw new IdentityLoadError(`identity.keyFile ${files.keyFile}: key does not match the certificate in ${files.certFile}`);

  const byDomain = new Map<string, X509Certificate[]>();
  const defaultRoots = certificates(contents.bundle, `identity.bundleFile ${files.bundleFile}`);
  if (defaultRoots.length === 0) throw new IdentityLoadError(`identity.bundleFile ${files.bundleFile}: no PEM certificate found`);
  for (const domain of files.trustDomains) {
    const file = files.bundles[domain];
    const text = contents.bundles.get(domain);
    const roots = file !== undefined && text !== undefined ? certificates(text, `identity.bundles.${domain} ${file}`) : defaultRoots;
    if (roots.length === 0) throw new IdentityLoadError(`identity.bundles.${domain} ${file}: no PEM certificate found`);
    const notCa = roots.find((cert) => !cert.ca);
    if (notCa) throw new IdentityLoadError(`bundle for ${domain}: certificate ${notCa.subject.replaceAll('\n', ', ')} is not a CA`);
    byDomain.set(domain, roots);
  }
  return { id, certPem, keyPem, chain, notAfter: new Date(leaf.validTo), bundles: new TrustBundleSet(byDomain) };
}

function digestOf(files: SvidFiles, contents: FileContents | undefined): string {
  const hash = createHash('sha256');
  if (!contents) {
    // Some file is missing or unreadable: hash what can be read, so each distinct state is reported once.
    for (const file of [files.certFile, files.keyFile, files.bundleFile, ...Object.values(files.bundles)]) {
      try {
        hash.update(readFileSync(file));
      } catch {
        hash.update(`missing:${file}`);
      }
      hash.update('\0');
    }
    return 'partial:' + hash.digest('hex');
  }
  for (const text of [contents.cert, contents.key, contents.bundle, ...contents.bundles.values()]) hash.update(text).update('\0');
  return hash.digest('hex');
}

export interface SvidSourceEvents {
  update: [IdentityMaterial];
  error: [IdentityLoadError];
}

/** Where this sidecar's SVID and bundles come from: files, or the SPIFFE Workload API. */
export interface SvidSource extends EventEmitter<SvidSourceEvents> {
  readonly material: IdentityMaterial;
  stop(): void;
}

/**
 * Polls the files and emits `update` with each new good set, `error` for a bad one (once per
 * distinct content). Polling, not fs.watch: atomic renames and the CSI driver's symlink swaps
 * are both seen, and a poll that catches a half-written file simply tries again next time.
 */
export class FileSvidSource extends EventEmitter<SvidSourceEvents> implements SvidSource {
  private current: IdentityMaterial;
  private lastDigest: string;
  private timer: NodeJS.Timeout | undefined;
  private readonly files: SvidFiles;

  constructor(files: SvidFiles) {
    super();
    this.files = files;
    const contents = readContents(files);
    this.current = checkContents(files, contents, Date.now());
    this.lastDigest = digestOf(files, contents);
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

  /** Checks the files now; returns true when a new set was taken. Never throws. */
  poll(): boolean {
    let contents: FileContents | undefined;
    let failure: unknown;
    try {
      contents = readContents(this.files);
    } catch (error) {
      failure = error;
    }
    const digest = digestOf(this.files, contents);
    if (digest === this.lastDigest) return false;
    this.lastDigest = digest;
    try {
      if (!contents) throw failure;
      this.current = checkContents(this.files, contents, Date.now());
    } catch (error) {
      // Runs on a timer: whatever a half-written file does to a parser, the last good set stays.
      this.emit('error', error instanceof IdentityLoadError ? error : new IdentityLoadError(`SVID files: ${(error as Error).message}`));
      return false;
    }
    this.emit('update', this.current);
    return true;
  }
}
