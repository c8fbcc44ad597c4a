// The deploy kit (deploy/, Dockerfile) stays in step with the code: every YAML parses, the
// Kubernetes manifests are complete, the embedded config and policy pass the real schemas, the
// probes, ports and grace period agree with the config, and every metric that a dashboard or an
// alert queries is one the proxy actually exports.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { configSchema, type Config } from '../../../src/config/schema.ts';
import { policySchema } from '../../../src/pdp/embedded-policy.ts';
import { DEMO_POLICY } from '../../../src/cli/demo.ts';
import { authzenFacts } from '../../../src/pdp/facts.ts';
import type { PdpInput } from '../../../src/pdp/pdp.ts';
import { createMetrics } from '../../../src/telemetry/metrics.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../../..');
const DEPLOY = join(ROOT, 'deploy');

type Obj = Record<string, unknown>;
const obj = (value: unknown): Obj => {
  expect(value, 'expected an object').toBeTypeOf('object');
  expect(value).not.toBeNull();
  return value as Obj;
};
const arr = (value: unknown): unknown[] => {
  expect(Array.isArray(value), `expected an array, got ${JSON.stringify(value)}`).toBe(true);
  return value as unknown[];
};

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => (entry.isDirectory() ? filesUnder(join(dir, entry.name)) : [join(dir, entry.name)]));
}
const rel = (file: string) => relative(ROOT, file).split('\\').join(posix.sep);

const yamlFiles = filesUnder(DEPLOY).filter((f) => /\.ya?ml$/.test(f));
/** Every document of every YAML file under deploy/, by file. */
const documents = new Map<string, unknown[]>(yamlFiles.map((f) => [rel(f), parseAllDocuments(readFileSync(f, 'utf8')).map((d) => ('toJS' in d ? d.toJS() : undefined))]));
const k8sObjects = [...documents].flatMap(([file, docs]) =>
  docs.filter((d): d is Obj => d !== null && typeof d === 'object' && ('apiVersion' in d || 'kind' in d || file.startsWith('deploy/kubernetes/'))).map((d) => ({ file, d })),
);
const find = (kind: string, name: string, file = 'deploy/kubernetes/'): Obj => {
  const hit = k8sObjects.find(({ file: f, d }) => f.startsWith(file) && d.kind === kind && obj(d.metadata).name === name);
  expect(hit, `${kind}/${name} in ${file}`).toBeDefined();
  return hit!.d;
};

const configMap = find('ConfigMap', 'orders-api-portcullis');
const configText = obj(configMap.data)['portcullis.yaml'] as string;
const policyText = obj(configMap.data)['policy.yaml'] as string;
const rawConfig = obj(parse(configText));
const parsedConfig = configSchema.safeParse(rawConfig);
const config = parsedConfig.data as Config;
const deployment = find('Deployment', 'orders-api', 'deploy/kubernetes/orders-api.yaml');
const podSpec = obj(obj(obj(deployment.spec).template).spec);
const containers = arr(podSpec.containers).map(obj);
const sidecar = containers.find((c) => c.name === 'portcullis')!;

/** A container port given by name or number, as a number. */
function portNumber(container: Obj, port: unknown): number | undefined {
  if (typeof port === 'number') return port;
  const named = arr(container.ports ?? []).map(obj).find((p) => p.name === port);
  return named?.containerPort as number | undefined;
}

function issues(result: { success: boolean; error?: { issues: readonly { path: readonly PropertyKey[]; message: string }[] } }): string[] {
  return result.success ? [] : (result.error?.issues ?? []).map((i) => `${i.path.map(String).join('.')}: ${i.message}`);
}

describe('YAML under deploy/', () => {
  it('finds the kit', () => {
    expect(yamlFiles.length).toBeGreaterThanOrEqual(8);
  });

  it.each(yamlFiles.map(rel))('%s parses (every document)', (file) => {
    const docs = parseAllDocuments(readFileSync(join(ROOT, file), 'utf8'));
    const list = Array.isArray(docs) ? docs : [docs];
    expect(list.length).toBeGreaterThan(0);
    for (const doc of list) {
      expect(doc.errors.map((e) => e.message)).toEqual([]);
      expect(doc.warnings.map((e) => e.message)).toEqual([]);
    }
  });

  it('every Kubernetes object has apiVersion, kind and metadata.name', () => {
    expect(k8sObjects.length).toBeGreaterThanOrEqual(7);
    for (const { file, d } of k8sObjects) {
      const where = `${file}: ${JSON.stringify(d).slice(0, 80)}`;
      expect(d.apiVersion, where).toMatch(/^[a-z0-9.\-/]*v\d+(alpha\d+|beta\d+)?$/);
      expect(d.kind, where).toMatch(/^[A-Z][A-Za-z]+$/);
      expect(obj(d.metadata).name, where).toMatch(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
    }
  });
});

describe('the Portcullis config and policy in the ConfigMap', () => {
  it('the config validates against configSchema', () => {
    expect(issues(parsedConfig)).toEqual([]);
    expect(parsedConfig.success).toBe(true);
  });

  it('listens on 8443, forwards to the service on loopback, exposes the admin API deliberately', () => {
    expect(config.listen).toEqual({ address: '0.0.0.0', port: 8443, protocols: ['h2', 'http/1.1'] });
    expect(config.upstream.url).toBe('http://127.0.0.1:8080');
    expect(config.admin).toEqual({ address: '0.0.0.0', port: 9901, allowNonLoopback: true });
    expect(config.pdp.kind).toBe('embedded');
    expect(config.pdp.policyFile).toBe('policy.yaml');
    expect(config.pdp.onError).toBe('deny');
  });

  it('the policy validates against policySchema and is the demo policy', () => {
    const policy = policySchema.safeParse(parse(policyText));
    expect(issues(policy)).toEqual([]);
    expect(policy.data).toEqual(policySchema.parse(parse(DEMO_POLICY)));
  });

  it('is reached through the volumes the sidecar mounts', () => {
    const mounts = arr(sidecar.volumeMounts).map(obj);
    const volumes = arr(podSpec.volumes).map(obj);
    const args = [...arr(sidecar.command ?? []), ...arr(sidecar.args ?? [])] as string[];
    const configPath = args[args.indexOf('--config') + 1]!;
    const configMount = mounts.find((m) => m.mountPath === posix.dirname(configPath))!;
    expect(configMount, `a mount at ${posix.dirname(configPath)}`).toBeDefined();
    const configVolume = volumes.find((v) => v.name === configMount.name)!;
    expect(obj(configVolume.configMap).name).toBe(obj(configMap.metadata).name);
    expect(Object.keys(obj(configMap.data))).toContain(posix.basename(configPath));

    const svidDir = posix.dirname(config.identity.certFile!);
    for (const file of [config.identity.keyFile!, config.identity.bundleFile!]) expect(posix.dirname(file)).toBe(svidDir);
    const svidMount = mounts.find((m) => m.mountPath === svidDir)!;
    expect(svidMount, `a mount at ${svidDir}`).toBeDefined();
    expect(svidMount.readOnly).toBe(true);

    // spiffe-helper writes exactly the files the config reads, into the same volume.
    const helper = arr(podSpec.initContainers).map(obj).find((c) => c.name === 'spiffe-helper')!;
    expect(helper.restartPolicy).toBe('Always');
    expect(arr(helper.volumeMounts).map(obj).find((m) => m.mountPath === svidDir)?.name).toBe(svidMount.name);
    const hcl = obj(find('ConfigMap', 'orders-api-spiffe-helper').data)['helper.conf'] as string;
    const setting = (key: string) => new RegExp(`^\\s*${key}\\s*=\\s*"([^"]*)"`, 'm').exec(hcl)?.[1];
    expect(setting('cert_dir')).toBe(svidDir);
    expect(setting('svid_file_name')).toBe(posix.basename(config.identity.certFile!));
    expect(setting('svid_key_file_name')).toBe(posix.basename(config.identity.keyFile!));
    expect(setting('svid_bundle_file_name')).toBe(posix.basename(config.identity.bundleFile!));
    expect(hcl).toMatch(/add_intermediates_to_bundle\s*=\s*false/);
    // The Workload API socket comes from the SPIFFE CSI driver.
    const socketDir = posix.dirname(setting('agent_address')!);
    const socketMount = arr(helper.volumeMounts).map(obj).find((m) => m.mountPath === socketDir)!;
    expect(obj(volumes.find((v) => v.name === socketMount.name)!.csi).driver).toBe('csi.spiffe.io');
  });

  it.each(['embedded', 'opa', 'authzen', 'ext-authz'])('the pdp block of deploy/pdp/%s/portcullis.yaml validates in that config', (kind) => {
    const snippet = obj(documents.get(`deploy/pdp/${kind}/portcullis.yaml`)![0]);
    expect(Object.keys(snippet)).toEqual(['pdp']);
    const result = configSchema.safeParse({ ...rawConfig, pdp: snippet.pdp });
    expect(issues(result)).toEqual([]);
    expect(result.data?.pdp.kind).toBe(kind);
  });

  it('the embedded example policy is the demo policy', () => {
    expect(policySchema.parse(documents.get('deploy/pdp/embedded/policy.yaml')![0])).toEqual(policySchema.parse(parse(DEMO_POLICY)));
  });
});

describe('the Deployment', () => {
  it('probes /healthz (liveness) and /readyz (readiness) on the admin port', () => {
    const liveness = obj(obj(sidecar.livenessProbe).httpGet);
    const readiness = obj(obj(sidecar.readinessProbe).httpGet);
    expect(liveness.path).toBe('/healthz');
    expect(readiness.path).toBe('/readyz');
    expect(portNumber(sidecar, liveness.port)).toBe(config.admin.port);
    expect(portNumber(sidecar, readiness.port)).toBe(config.admin.port);
    expect(portNumber(sidecar, 'https')).toBe(config.listen.port);
  });

  it('gives the drain more time than limits.shutdownTimeout (plus the preStop sleep)', () => {
    const grace = podSpec.terminationGracePeriodSeconds as number;
    const preStop = (obj(obj(sidecar.lifecycle ?? {}).preStop ?? {}).sleep as { seconds?: number } | undefined)?.seconds ?? 0;
    expect(typeof grace).toBe('number');
    expect(grace).toBeGreaterThan(config.limits.shutdownTimeout / 1000 + preStop);
  });

  it('runs every container non-root, read-only, without capabilities, with requests and limits', () => {
    expect(obj(podSpec.securityContext).runAsNonRoot).toBe(true);
    for (const c of [...containers, ...arr(podSpec.initContainers ?? []).map(obj)]) {
      const sc = obj(c.securityContext);
      expect(sc.readOnlyRootFilesystem, String(c.name)).toBe(true);
      expect(sc.allowPrivilegeEscalation, String(c.name)).toBe(false);
      expect(obj(sc.capabilities).drop, String(c.name)).toEqual(['ALL']);
      const resources = obj(c.resources);
      expect(obj(resources.requests).memory, String(c.name)).toBeDefined();
      expect(obj(resources.limits).memory, String(c.name)).toBeDefined();
    }
  });

  it('the Service exposes only 8443, to the mTLS listener', () => {
    const service = find('Service', 'orders-api');
    const ports = arr(obj(service.spec).ports).map(obj);
    expect(ports.map((p) => p.port)).toEqual([8443]);
    expect(portNumber(sidecar, ports[0]!.targetPort)).toBe(8443);
    expect(obj(obj(service.spec).selector)).toEqual(obj(obj(deployment.spec).selector).matchLabels);
  });

  it('the NetworkPolicy admits the admin port from the monitoring namespace only', () => {
    const policy = obj(find('NetworkPolicy', 'orders-api-ingress').spec);
    expect(policy.podSelector).toEqual(obj(deployment.spec).selector);
    expect(policy.policyTypes).toContain('Ingress');
    const rules = arr(policy.ingress).map(obj);
    const adminRules = rules.filter((r) => arr(r.ports ?? []).map(obj).some((p) => p.port === 9901 || p.port === 'admin'));
    expect(adminRules.length).toBeGreaterThan(0);
    // A rule without ports would open 9901 too.
    for (const r of rules) expect(r.ports, 'every rule names its ports').toBeDefined();
    for (const r of adminRules) {
      const from = arr(r.from).map(obj);
      expect(from.length).toBeGreaterThan(0);
      for (const peer of from) {
        expect(Object.keys(peer)).toEqual(['namespaceSelector']);
        expect(obj(peer.namespaceSelector).matchLabels).toEqual({ 'kubernetes.io/metadata.name': 'monitoring' });
      }
    }
  });
});

describe('metrics queried by the dashboard and the alerts', async () => {
  const metrics = createMetrics();
  const exported = new Set<string>();
  for (const metric of await metrics.registry.getMetricsAsJSON()) {
    exported.add(metric.name);
    if (String(metric.type) === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) exported.add(metric.name + suffix);
  }
  const metricNames = (expr: string) => expr.match(/\b(?:portcullis|process|nodejs)_[a-z_]+/g) ?? [];

  const dashboard = obj(JSON.parse(readFileSync(join(DEPLOY, 'grafana/portcullis-dashboard.json'), 'utf8')));
  const panels = arr(dashboard.panels).map(obj).flatMap((p) => [p, ...arr(p.panels ?? []).map(obj)]);
  const dashboardExprs = [
    ...panels.flatMap((p) => arr(p.targets ?? []).map((t) => obj(t).expr as string)),
    ...arr(obj(dashboard.templating).list).map(obj).flatMap((v) => (v.type === 'query' ? [obj(v.query).query as string] : [])),
  ];
  const alertFile = obj(documents.get('deploy/prometheus/portcullis-alerts.yaml')![0]);
  const rules = arr(alertFile.groups).flatMap((g) => arr(obj(g).rules).map(obj));

  it('the registry has the SPEC metrics and the default process metrics', () => {
    for (const name of ['portcullis_requests_total', 'portcullis_decision_duration_seconds_bucket', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds']) expect(exported).toContain(name);
  });

  it('every metric in the dashboard exists', () => {
    expect(dashboardExprs.length).toBeGreaterThan(10);
    const used = new Set(dashboardExprs.flatMap(metricNames));
    expect(used.size).toBeGreaterThan(10);
    expect([...used].filter((name) => !exported.has(name))).toEqual([]);
  });

  it('every metric in the alert rules exists', () => {
    const used = new Set(rules.flatMap((r) => metricNames(String(r.expr))));
    expect(used.size).toBeGreaterThan(5);
    expect([...used].filter((name) => !exported.has(name))).toEqual([]);
  });

  it('covers the SPEC metrics that matter to operators', () => {
    const all = new Set([...dashboardExprs, ...rules.map((r) => String(r.expr))].flatMap(metricNames));
    for (const name of [
      'portcullis_decisions_total',
      'portcullis_decision_duration_seconds_bucket',
      'portcullis_pdp_requests_total',
      'portcullis_pdp_duration_seconds_bucket',
      'portcullis_cache_hits_total',
      'portcullis_cache_misses_total',
      'portcullis_cache_entries',
      'portcullis_grant_expired_total',
      'portcullis_revocations_total',
      'portcullis_requests_total',
      'portcullis_tls_handshake_failures_total',
      'portcullis_svid_expiry_timestamp_seconds',
      'portcullis_audit_dropped_total',
      'portcullis_build_info',
      'portcullis_active_connections',
      'portcullis_requests_in_flight',
      'portcullis_open_tunnels',
      'portcullis_pdp_circuit_state',
      'portcullis_config_reloads_total',
      'portcullis_jwks_fetches_total',
    ]) {
      expect(all, name).toContain(name);
    }
  });

  it('every alert says what it means and what to do', () => {
    expect(rules.length).toBeGreaterThanOrEqual(7);
    for (const r of rules) {
      expect(r.alert, JSON.stringify(r)).toMatch(/^Portcullis[A-Za-z]+$/);
      expect(String(r.expr).trim()).not.toBe('');
      expect(obj(r.labels).severity).toMatch(/^(warning|critical)$/);
      expect(String(obj(r.annotations).summary).length, String(r.alert)).toBeGreaterThan(20);
      expect(String(obj(r.annotations).description).length, String(r.alert)).toBeGreaterThan(80);
    }
    const exprs = rules.map((r) => String(r.expr));
    expect(exprs.some((e) => e.includes('portcullis_pdp_requests_total{outcome!~"allow|deny"}'))).toBe(true);
    expect(exprs.some((e) => /portcullis_svid_expiry_timestamp_seconds - time\(\) < 3600/.test(e))).toBe(true);
    expect(exprs.some((e) => /histogram_quantile\(0\.99, .*portcullis_decision_duration_seconds_bucket/s.test(e))).toBe(true);
    expect(exprs.some((e) => e.includes('portcullis_requests_total{code=~"502|504"}'))).toBe(true);
  });

  it('the dashboard has the panels operators need and a Prometheus data source variable', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    const titles = panels.map((p) => p.title);
    for (const title of [
      'Decisions by reason',
      'Decision latency p50/p99 by source',
      'Cache hit ratio',
      'Cache entries',
      'PDP latency',
      'PDP errors',
      'Grant expiries and revocations',
      'Requests by code',
      'TLS handshake failures by reason',
      'SVID expiry',
    ]) {
      expect(titles).toContain(title);
    }
    const datasource = arr(obj(dashboard.templating).list).map(obj).find((v) => v.type === 'datasource');
    expect(datasource?.query).toBe('prometheus');
    for (const p of panels.filter((x) => x.type !== 'row')) expect(obj(p.datasource).uid).toBe(`\${${String(datasource!.name)}}`);
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('the scrape config keeps the admin port 9901 and scrapes /metrics', () => {
    const job = obj(arr(obj(documents.get('deploy/prometheus/scrape-config.yaml')![0]).scrape_configs)[0]);
    expect(job.metrics_path).toBe('/metrics');
    expect(arr(job.kubernetes_sd_configs).map(obj)[0]!.role).toBe('pod');
    expect(JSON.stringify(job.relabel_configs)).toContain('9901');
  });
});

describe('the Dockerfile', () => {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const instructions = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const of = (op: string) => instructions.filter((l) => l.toUpperCase().startsWith(`${op} `)).map((l) => l.slice(op.length + 1).trim());

  /** The stages, in order: the FROM image (ARG defaults substituted) and the instructions after it. */
  const args = new Map<string, string>();
  const stages: { from: string; name: string | undefined; body: string[] }[] = [];
  for (const line of instructions) {
    const arg = /^ARG\s+(\w+)(?:=(.*))?$/i.exec(line);
    if (arg && stages.length === 0) args.set(arg[1]!, arg[2] ?? '');
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\w+))?$/i.exec(line);
    if (from) stages.push({ from: from[1]!.replace(/^\$\{(\w+)\}$/, (_, name: string) => args.get(name) ?? ''), name: from[2], body: [] });
    else if (stages.length > 0) stages.at(-1)!.body.push(line);
  }
  const runtime = stages.at(-1)!;
  const inRuntime = (op: string) => runtime.body.filter((l) => l.toUpperCase().startsWith(`${op} `)).map((l) => l.slice(op.length + 1).trim());

  it('builds on node:24-slim pinned by digest, and runs on distroless Node 24', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of stages.slice(0, -1)) expect(stage.from).toMatch(/^node:24(\.\d+)*-slim@sha256:[0-9a-f]{64}$/);
    expect(runtime.from).toMatch(/^gcr\.io\/distroless\/nodejs24-debian12(:nonroot)?(@sha256:[0-9a-f]{64})?$/);
    // The runtime base is pinned, or the Dockerfile says plainly that it is not and how to pin it.
    if (!runtime.from.includes('@sha256:')) expect(text).toMatch(/NOT PINNED BY DIGEST[\s\S]*--build-arg RUNTIME_IMAGE=gcr\.io\/distroless\/nodejs24-debian12:nonroot@sha256:/);
  });

  it('runs the build in one stage and installs production dependencies only, outside the image', () => {
    expect(of('RUN').some((r) => /npm ci\b(?!.*--omit)/.test(r))).toBe(true);
    expect(of('RUN').some((r) => r.includes('npm run build'))).toBe(true);
    expect(of('RUN').some((r) => r.includes('npm ci --omit=dev'))).toBe(true);
    expect(inRuntime('COPY').some((r) => /--from=\w+\s+\S*dist/.test(r))).toBe(true);
    expect(inRuntime('COPY').some((r) => /--from=\w+\s+\S*node_modules/.test(r))).toBe(true);
  });

  it('the runtime stage runs nothing (distroless has no shell) and has no npm', () => {
    expect(inRuntime('RUN')).toEqual([]);
    expect(runtime.body.join('\n')).not.toMatch(/\bnpm\b/);
    expect(inRuntime('COPY').some((r) => /\bpackage\.json\b/.test(r))).toBe(true);
  });

  it('carries the OCI labels version, revision and source, from build args', () => {
    const labels = inRuntime('LABEL').join(' ');
    for (const [key, arg] of [['version', 'VERSION'], ['revision', 'REVISION'], ['source', 'SOURCE']]) {
      expect(labels).toContain(`org.opencontainers.image.${key}="\${${arg}}"`);
      expect(inRuntime('ARG').some((a) => a === arg || a.startsWith(`${arg}=`)), arg).toBe(true);
    }
    // The default version label is the package's (bump both together).
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(inRuntime('ARG')).toContain(`VERSION=${pkg.version}`);
  });

  it('runs as a numeric user that is not root, the one the Deployment runs as', () => {
    const users = inRuntime('USER');
    expect(users.length).toBeGreaterThan(0);
    const [user, group] = users.at(-1)!.split(':');
    expect(user).toMatch(/^\d+$/);
    expect(['root', '0']).not.toContain(user);
    expect(obj(podSpec.securityContext).runAsUser).toBe(Number(user));
    expect(obj(podSpec.securityContext).runAsGroup).toBe(Number(group));
  });

  it('exposes 8443 and 9901 and runs `portcullis run --config`', () => {
    expect(of('EXPOSE').join(' ').split(/\s+/)).toEqual(expect.arrayContaining(['8443', '9901']));
    const entrypoint = JSON.parse(of('ENTRYPOINT').at(-1)!) as string[];
    const cmd = JSON.parse(of('CMD').at(-1)!) as string[];
    expect(entrypoint).toEqual(['/nodejs/bin/node', 'bin/portcullis.js']);
    expect(cmd.slice(0, 2)).toEqual(['run', '--config']);
    expect(cmd[2]).toMatch(/^\/etc\/portcullis\/.+\.ya?ml$/);
  });

  it('.dockerignore keeps build output, tests and the repository out of the context', () => {
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
    for (const entry of ['node_modules', 'dist', 'coverage', 'test', 'bench/results', '.git']) expect(ignored).toContain(entry);
  });
});

describe('the PDP examples', () => {
  const request = obj(JSON.parse(readFileSync(join(DEPLOY, 'pdp/authzen/request.json'), 'utf8')));

  it('the AuthZEN request has exactly subject, action, resource, context', () => {
    expect(Object.keys(request).sort()).toEqual(['action', 'context', 'resource', 'subject']);
  });

  it('the AuthZEN request is exactly what authzenFacts sends for those facts', () => {
    const subject = obj(request.subject);
    const properties = obj(subject.properties);
    const context = obj(request.context);
    const grantClaims = obj(context.grant);
    const input = {
      subject: subject.id,
      posture: { sub: subject.id, iatMs: 0, expMs: 0, tier: properties.posture_tier, posture: properties.posture },
      action: obj(request.action).name,
      method: obj(obj(request.action).properties).method,
      resource: obj(request.resource).id,
      route: obj(obj(request.resource).properties).route,
      sensitivity: obj(obj(request.resource).properties).sensitivity,
      grant: { claims: grantClaims },
      intent: context.intent,
      requestId: context.request_id,
      nowMs: Date.parse(String(context.time)),
    } as unknown as PdpInput;
    expect(authzenFacts(input)).toEqual(request);
  });

  it('the AuthZEN response allows', () => {
    expect(obj(JSON.parse(readFileSync(join(DEPLOY, 'pdp/authzen/response.json'), 'utf8'))).decision).toBe(true);
  });

  it('the Rego policy is package portcullis with an allow rule, in Rego v1 syntax', () => {
    const rego = readFileSync(join(DEPLOY, 'pdp/opa/portcullis.rego'), 'utf8');
    expect(rego).toMatch(/^package portcullis$/m);
    expect(rego).toMatch(/^import rego\.v1$/m);
    expect(rego).toMatch(/^default allow := false$/m);
    expect(rego).toMatch(/^allow if \{/m);
    for (const fact of ['input.subject.id', 'input.action.name', 'input.resource.id', 'input.resource.properties.sensitivity', 'input.subject.properties.posture_tier', 'input.context.grant']) {
      expect(rego).toContain(fact);
    }
    // Every input path the policy reads is one authzenFacts produces.
    for (const [, path] of rego.matchAll(/input\.([a-z_.]+)/g)) {
      const head = path!.split('.').slice(0, 2);
      expect(['subject', 'action', 'resource', 'context']).toContain(head[0]);
      if (head[1] !== undefined) expect(Object.keys(obj(request[head[0]!]))).toContain(head[1]);
    }
    expect(readFileSync(join(DEPLOY, 'pdp/opa/README.md'), 'utf8')).toContain('http://127.0.0.1:8181/v1/data/portcullis/allow');
  });
});

describe('the embedded example policy tests (issue 14)', () => {
  it('deploy/pdp/embedded/policy-test.yaml passes against policy.yaml, through the proxy\'s own checks', async () => {
    const { policyTest } = await import('../../../src/cli/policy-test.ts');
    const run = policyTest(join(DEPLOY, 'pdp/embedded/policy.yaml'), join(DEPLOY, 'pdp/embedded/policy-test.yaml'));
    expect(run.output).toMatch(/^PASS: \d+ of \d+ cases$/m);
    expect(run.output).not.toContain('FAIL');
    expect(run.code).toBe(0);
  });
});
