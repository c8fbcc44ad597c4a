// Usage text per command (SPEC "Command line": `portcullis COMMAND --help` prints the command's
// usage and never runs it). One table, so the overview and each command's help cannot drift.

const LOG_LEVEL = '--log-level trace|debug|info|warn|error|fatal|silent';

/** Keyed by the command words: `run`, `grant mint`, ... */
export const COMMAND_USAGE: Readonly<Record<string, string>> = {
  run: `usage: portcullis run --config FILE [${LOG_LEVEL}]
  Runs the proxy. SIGTERM/SIGINT drain and exit 0, SIGHUP reloads the config.
  --config, -c FILE   the config file (YAML or JSON)
  --log-level LEVEL   default: PORTCULLIS_LOG_LEVEL, else info
exit: 0 stopped cleanly, 1 bad config or failed to start, 2 usage
`,
  check: `usage: portcullis check --config FILE [--offline] [--format text|json]
  Validates the config and policy: one line per problem (file:line: key.path: what is wrong),
  then a "warning:" line per privileged route whose sensitivity tier demands no grant. With
  pdp.policyTests, also runs those policy test cases (a failing case is a problem at its line).
  --config, -c FILE   the config file
  --offline           check the schema, the cross-field rules and the embedded policy file
                      (pdp.policyFile is config), without reading the SVID, key, bundle or JWKS
                      files the config names: for CI on a ConfigMap whose files live elsewhere
  --format FORMAT     text (default) or json: {"file","ok","problems":[{file,line,key,message}],"warnings":[...]}
exit: 0 no problems (warnings allowed), 1 problems, 2 usage
`,
  demo: `usage: portcullis demo [${LOG_LEVEL}]
  The quickstart: a throwaway dev CA and SVIDs, a sample service, the proxy with the embedded
  PDP and an example policy, and copy-paste curl commands. Ctrl-C stops it and deletes its files.
  --log-level LEVEL   default: PORTCULLIS_LOG_LEVEL, else warn
exit: 0 stopped cleanly, 1 failed to start, 2 usage
`,
  'dev-pki': `usage: portcullis dev-pki --out DIR --trust-domain TD --workload NAME [--workload NAME...] [--force]
  Writes a throwaway PKI for trying and testing (NEVER for production): a CA (bundle.pem), an
  X509-SVID per workload (NAME.pem, NAME_key.pem), grant and posture issuer key pairs
  (grant-issuer_key.pem + grant-issuer-jwks.json, posture-issuer_key.pem + posture-issuer-jwks.json)
  and README.txt saying what each file is.
  --out DIR            where to write (created if missing)
  --trust-domain TD    e.g. example.org
  --workload NAME      a name gives spiffe://TD/ns/default/sa/NAME; a path starting with "/"
                       (e.g. /ns/prod/sa/web) gives spiffe://TD/ns/prod/sa/web, files named after
                       its last segment. The first workload is the server: its SVID also carries
                       the DNS name localhost.
  --force              overwrite files that already exist (refused otherwise)
exit: 0 written, 1 could not write, 2 usage
`,
  'grant mint': `usage: portcullis grant mint --key PEM --iss URL --sub SPIFFE_ID --aud SPIFFE_ID --scope "a b" --ttl 5m
                        [--intent S] [--resources r1,r2] [--cnf-cert PEM] [--approver S] [--justification S] [--kid S] [--jti S]
  Prints a signed grant token (for tests, demos and small setups). The algorithm follows the key
  (P-256 ES256, P-384 ES384, Ed25519 EdDSA, RSA RS256).
exit: 0 printed, 1 unreadable key or bad value, 2 usage
`,
  'posture mint': `usage: portcullis posture mint --key PEM --iss URL --sub SPIFFE_ID --trust low|medium|high --ttl 5m [--kid S]
  Prints a signed posture assertion (for demos and tests).
exit: 0 printed, 1 unreadable key or bad value, 2 usage
`,
  'svid inspect': `usage: portcullis svid inspect FILE.pem [--bundle FILE.pem [--trust-domain TD]]
  Prints the SPIFFE ID, expiry, SHA-256 and chain of an X509-SVID; with --bundle, verifies it.
exit: 0 valid, 1 names the rule it breaks, 2 usage
`,
  'policy test': `usage: portcullis policy test --policy FILE CASES.yaml
  Runs decision cases against an embedded policy (like opa test), through the proxy's own grant
  floor, token checks and embedded PDP: one line per case, "ok" or "FAIL" with expected vs got
  and the rule that decided. A case (SPEC "Policy tests"): name, subject (SPIFFE ID), action,
  resource, sensitivity, grant: { ttl, scope?, resources?, intent? } (omit for none),
  posture: low|medium|high (omit for none), intent?, expect: allow|deny, reason? (with deny).
  --policy FILE       the embedded policy (pdp.policyFile)
  grants.maxLifetime and posture.maxAge take their defaults (24h, 5m); \`portcullis check\` runs
  the config's pdp.policyTests with the config's own.
exit: 0 every case passed, 1 a case failed or a file is malformed (file:line: key: what), 2 usage
`,
  'policy explain': `usage: portcullis policy explain --policy FILE --subject ID --action A --resource R
                              [--sensitivity S] [--grant-ttl D] [--posture TIER] [--intent I]
  Prints the decision for one request, its reason, and what produced it (like opa eval
  --explain): the proxy's grant floor, every rule's reading of the request (subject, action,
  resource), and the sensitivity tier's requirements, met or not.
  --sensitivity S     low (default) | medium | high | critical: the route's
  --grant-ttl D       a verified grant of this lifetime, scoped to the action (omit for none)
  --posture TIER      low | medium | high (omit for none)
  --intent I          the declared intent
exit: 0 explained (allow or deny), 1 the policy file is malformed, 2 usage
`,
  revoke: `usage: portcullis revoke --config FILE (--jti ID | --sub SPIFFE_ID | --posture-sub SPIFFE_ID) [--reason TEXT]
  Revokes fleet-wide: with revocation.source redis it adds the entry to the stream (XADD,
  trimmed to revocation.retain; every sidecar applies it); with local, it calls the admin API
  named in the config. Prints what was revoked and the entry id.
  --config, -c FILE       the config file (its revocation and admin keys are used)
  --jti ID                a grant (every grant with this jti)
  --sub SPIFFE_ID         every grant issued to this subject so far
  --posture-sub SPIFFE_ID every posture assertion of this peer issued so far
  --reason TEXT           kept in the entry and in every sidecar's audit line
exit: 0 revoked, 1 names the problem (bus or admin API unreachable, bad ID, bad config), 2 usage
`,
};

/** Commands with subcommands: `portcullis grant --help` lists them. */
const GROUPS: Readonly<Record<string, readonly string[]>> = { grant: ['grant mint'], posture: ['posture mint'], svid: ['svid inspect'], policy: ['policy test', 'policy explain'] };

export const USAGE = `usage: portcullis COMMAND [options]   (portcullis COMMAND --help for each)
  portcullis run --config FILE          run the proxy
  portcullis check --config FILE        validate config and policy [--offline] [--format json]
  portcullis demo                       the quickstart (dev CA, sample upstream, curl commands)
  portcullis dev-pki --out DIR --trust-domain TD --workload NAME...   a throwaway PKI for your own service
  portcullis svid inspect FILE.pem [--bundle FILE.pem [--trust-domain TD]]
  portcullis grant mint --key PEM --iss URL --sub SPIFFE_ID --aud SPIFFE_ID --scope "a b" --ttl 5m [...]
  portcullis revoke --config FILE (--jti ID | --sub SPIFFE_ID | --posture-sub SPIFFE_ID) [--reason TEXT]
  portcullis posture mint --key PEM --iss URL --sub SPIFFE_ID --trust low|medium|high --ttl 5m [...]
  portcullis policy test --policy FILE CASES.yaml     run decision cases against an embedded policy
  portcullis policy explain --policy FILE --subject ID --action A --resource R [...]   why one request is decided so
  portcullis --version
exit codes: 0 ok, 1 failure (bad config, command failed), 2 usage (unknown command or flag, missing argument)
`;

/** A usage problem: exit 2, with the command's usage after the message. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly command: string | undefined;
  constructor(message: string, command?: string) {
    super(message);
    this.command = command;
  }
}

export function usageOf(command: string | undefined): string {
  return (command && COMMAND_USAGE[command]) || USAGE;
}

/**
 * The help a command line asks for, or undefined when it does not ask: `--help` or `-h` anywhere
 * before a `--`. Unknown commands are left to the dispatcher (they are a usage error there).
 */
export function helpFor(argv: readonly string[]): string | undefined {
  const end = argv.indexOf('--');
  const args = end === -1 ? argv : argv.slice(0, end);
  if (!args.includes('--help') && !args.includes('-h')) return undefined;
  const [command, sub] = args;
  if (command === undefined || command === '--help' || command === '-h') return USAGE;
  const full = sub !== undefined && COMMAND_USAGE[`${command} ${sub}`] ? `${command} ${sub}` : command;
  if (COMMAND_USAGE[full]) return COMMAND_USAGE[full];
  const group = GROUPS[command];
  if (group) return group.map((name) => COMMAND_USAGE[name]).join('\n');
  return undefined;
}
