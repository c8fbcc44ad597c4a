// The monitoring and rollout half of the deploy kit, checked with the real tools where they are
// installed (promtool, kubectl; CI installs promtool): the alert rules pass their unit tests
// (series that must fire and must not), the PrometheusRule is the same rules, kustomize builds,
// the dashboard filters on job and rates over $__rate_interval, and the ConfigMap recipe in
// deploy/README.md works as written, without a cluster.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { configSchema } from '../../../src/config/schema.ts';
import { policySchema } from '../../../src/pdp/embedded-policy.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../../..');
const has = (tool: string, ...args: string[]) => spawnSync(tool, args).error === undefined;
const PROMTOOL = has('promtool', '--version');
const KUBECTL = has('kubectl', 'version', '--client');

type Obj = Record<string, unknown>;
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const yamlDocs = (text: string) => parseAllDocuments(text).map((d) => ('toJS' in d ? (d.toJS() as Obj) : undefined));
const run = (tool: string, args: string[], input?: string) => spawnSync(tool, args, { cwd: ROOT, input, encoding: 'utf8', timeout: 60_000 });

interface Rule {
  alert: string;
  expr: string;
  labels: { severity: string };
}
const alertGroups = (parse(read('deploy/prometheus/portcullis-alerts.yaml')) as { groups: { rules: Rule[] }[] }).groups;
const rules = alertGroups.flatMap((g) => g.rules);
const rule = (name: string): Rule => {
  const found = rules.find((r) => r.alert === name);
  expect(found, name).toBeDefined();
  return found!;
};

describe('alert rules', () => {
  it.skipIf(!PROMTOOL)('pass their promtool unit tests (deploy/prometheus/tests)', () => {
    const result = run('promtool', ['test', 'rules', 'deploy/prometheus/tests/portcullis-alerts.test.yaml']);
    expect(result.stdout + result.stderr).toContain('SUCCESS');
    expect(result.status, result.stdout + result.stderr).toBe(0);
  });

  it.skipIf(!PROMTOOL)('pass promtool check rules, as a rule file and as the PrometheusRule', () => {
    const plain = run('promtool', ['check', 'rules', 'deploy/prometheus/portcullis-alerts.yaml']);
    expect(plain.status, plain.stdout + plain.stderr).toBe(0);
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-rules-'));
    try {
      const spec = yamlDocs(read('deploy/prometheus/portcullis-rules.yaml'))[0]!.spec;
      writeFileSync(join(dir, 'rules.yaml'), JSON.stringify(spec));
      const wrapped = run('promtool', ['check', 'rules', join(dir, 'rules.yaml')]);
      expect(wrapped.status, wrapped.stdout + wrapped.stderr).toBe(0);
      expect(wrapped.stdout).toContain(`${rules.length} rules found`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.runIf(!PROMTOOL)('are not unit-tested here: promtool is not installed (Debian/Ubuntu: apt-get install prometheus)', () => {
    expect(PROMTOOL).toBe(false);
  });

  it('the unit tests cover the three alerts the review found broken, with series that fire and series that must not', () => {
    const tests = (parse(read('deploy/prometheus/tests/portcullis-alerts.test.yaml')) as { tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[] }).tests;
    const cases = tests.flatMap((t) => t.alert_rule_test);
    for (const name of ['PortcullisDown', 'PortcullisPdpErrorRatio', 'PortcullisPdpFailing', 'PortcullisAuditLinesDropped']) {
      const mine = cases.filter((c) => c.alertname === name);
      expect(mine.some((c) => c.exp_alerts.length > 0), `${name} fires somewhere`).toBe(true);
    }
    // Quiet cases: a sidecar that is up, a rare PDP timeout, a restarted audit counter.
    expect(cases.some((c) => c.exp_alerts.length === 0)).toBe(true);
  });

  it('PortcullisDown does not depend on the scrape job name (a PodMonitor names it "<namespace>/<name>")', () => {
    expect(rule('PortcullisDown').expr).not.toMatch(/\bjob\s*=/);
    expect(rule('PortcullisDown').expr).toMatch(/^up\{container="portcullis"\} == 0$/);
    // The plain scrape config sets the container label a PodMonitor gets from the operator.
    expect(read('deploy/prometheus/scrape-config.yaml')).toMatch(/source_labels: \[__meta_kubernetes_pod_container_name\]\n\s+target_label: container/);
  });

  it('PDP errors: a ratio, a warning below the page', () => {
    const warning = rule('PortcullisPdpErrorRatio');
    const critical = rule('PortcullisPdpFailing');
    expect(warning.labels.severity).toBe('warning');
    expect(critical.labels.severity).toBe('critical');
    for (const r of [warning, critical]) expect(r.expr).toMatch(/portcullis_pdp_requests_total\{outcome!~"allow\|deny"\}\[\d+m\]\)\)\s*\/\s*sum by \(namespace, app\) \(rate\(portcullis_pdp_requests_total\[/);
    expect(rules.map((r) => r.alert)).not.toContain('PortcullisPdpErrors');
  });

  it('a dropped audit line is an alert', () => {
    expect(rule('PortcullisAuditLinesDropped').expr).toContain('increase(portcullis_audit_dropped_total[');
  });

  it('the PrometheusRule holds exactly the rules of portcullis-alerts.yaml, labelled for kube-prometheus-stack', () => {
    const [prometheusRule] = yamlDocs(read('deploy/prometheus/portcullis-rules.yaml'));
    expect(prometheusRule!.kind).toBe('PrometheusRule');
    expect(prometheusRule!.apiVersion).toBe('monitoring.coreos.com/v1');
    expect((prometheusRule!.spec as Obj).groups).toEqual(alertGroups);
    expect((prometheusRule!.metadata as { labels: Obj }).labels.release).toBe('kube-prometheus-stack');
  });
});

describe('kustomize', () => {
  it.skipIf(!KUBECTL).each(['deploy/kubernetes', 'deploy/prometheus'])('kubectl kustomize %s builds', (dir) => {
    const result = run('kubectl', ['kustomize', dir]);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const kinds = yamlDocs(result.stdout).map((d) => d?.kind);
    expect(kinds.length).toBeGreaterThan(1);
    if (dir === 'deploy/prometheus') {
      expect(kinds.sort()).toEqual(['PodMonitor', 'PrometheusRule']);
      for (const d of yamlDocs(result.stdout)) expect((d!.metadata as { labels: Obj }).labels.release, String(d!.kind)).toBe('kube-prometheus-stack');
    } else {
      expect(kinds).toEqual(expect.arrayContaining(['ConfigMap', 'Deployment', 'Service', 'NetworkPolicy']));
    }
  });

  it('the PodMonitor carries the release label kube-prometheus-stack selects on, and the README says so', () => {
    const [podMonitor] = yamlDocs(read('deploy/prometheus/podmonitor.yaml'));
    expect((podMonitor!.metadata as { labels: Obj }).labels.release).toBe('kube-prometheus-stack');
    expect(read('deploy/README.md')).toMatch(/kube-prometheus-stack[^.]*ignores[^.]*`release`/s);
  });
});

describe('the Grafana dashboard', () => {
  const dashboard = JSON.parse(read('deploy/grafana/portcullis-dashboard.json')) as { panels: Obj[]; templating: { list: Obj[] } };
  const panels = dashboard.panels.flatMap((p) => [p, ...((p.panels as Obj[] | undefined) ?? [])]);
  const targets = panels.flatMap((p) => ((p.targets as { expr: string }[] | undefined) ?? []).map((t) => ({ title: String(p.title), expr: t.expr })));
  const variables = dashboard.templating.list;

  it('every range function runs over $__rate_interval (never $__interval, empty at short ranges)', () => {
    const ranges = targets.flatMap(({ title, expr }) => [...expr.matchAll(/\b(rate|irate|increase)\((?:[^()[\]]|\([^()]*\))*\[([^\]]+)\]/g)].map((m) => ({ title, fn: m[1], range: m[2] })));
    expect(ranges.length).toBeGreaterThan(15);
    expect(ranges.filter((r) => r.range !== '$__rate_interval')).toEqual([]);
    expect(targets.filter((t) => t.expr.includes('$__interval'))).toEqual([]);
  });

  it('every query filters on job, namespace and app, and job is a variable', () => {
    const job = variables.find((v) => v.name === 'job');
    expect(job?.type).toBe('query');
    expect(job?.includeAll).toBe(true);
    for (const { title, expr } of targets) {
      for (const selector of expr.match(/\b[a-z_]+\{[^}]*\}/g) ?? []) {
        expect(selector, title).toContain('job=~"$job"');
        expect(selector, title).toContain('namespace=~"$namespace"');
        expect(selector, title).toContain('app=~"$app"');
      }
      // A bare metric name (no selector at all) would escape every filter.
      expect(expr.replace(/\{[^}]*\}/g, '{}'), title).not.toMatch(/\b(portcullis|process|nodejs)_[a-z_]+(?!\{|[a-z_])/);
    }
    // The namespace and app lists follow the chosen job.
    for (const name of ['namespace', 'app']) expect(String((variables.find((v) => v.name === name)!.query as Obj).query)).toContain('job=~"$job"');
  });

  it('shows shadow denials per route and reason, and the TTL bound of cached allows per route (issue 14)', () => {
    const expr = (metric: string) => targets.filter((t) => t.expr.includes(metric)).map((t) => t.expr);
    expect(expr('portcullis_shadow_denials_total')).toEqual([expect.stringMatching(/^sum by \(route, reason\) \(rate\(portcullis_shadow_denials_total\{/)]);
    expect(expr('portcullis_cache_ttl_bound_total')).toEqual([expect.stringMatching(/^sum by \(route, bound\) \(rate\(portcullis_cache_ttl_bound_total\{/)]);
    const rows = dashboard.panels.filter((p) => p.type === 'row').map((p) => p.title);
    expect(rows).toContain('Policy rollout and cache TTL');
  });
});

describe('the ConfigMap recipe in deploy/README.md', () => {
  const readme = read('deploy/README.md');
  // The fenced block that starts "# Check the ConfigMap" (indented under a list item).
  const block = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!).find((b) => b.trimStart().startsWith('# Check the ConfigMap')) ?? '';
  const recipe = block.split('\n').map((l) => l.replace(/^ {0,3}/, '')).join('\n');

  it('is there, extracts both files and names the off-cluster check', () => {
    expect(recipe).toContain('kubectl');
    expect(recipe).toContain('portcullis check --offline');
    expect(recipe).not.toMatch(/kubectl create (cm|configmap)\b.*\s-f\s/);
  });

  it.skipIf(!KUBECTL)('works as written without a cluster: the files it writes are the ConfigMap data, byte for byte, and validate', () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-cm-'));
    try {
      // Every line but the check (it needs this branch's CLI, tested in test/integration/cli).
      const script = recipe.replaceAll('/tmp/portcullis-cm', dir).split('\n').filter((l) => !l.includes('portcullis check')).join('\n');
      const result = spawnSync('bash', ['-euo', 'pipefail', '-c', script], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, KUBECONFIG: join(dir, 'no-cluster') } });
      expect(result.stderr).toBe('');
      expect(result.status).toBe(0);
      const [configMap] = yamlDocs(read('deploy/kubernetes/portcullis-config.yaml'));
      const data = configMap!.data as Record<string, string>;
      for (const file of ['portcullis.yaml', 'policy.yaml']) expect(readFileSync(join(dir, file), 'utf8'), file).toBe(data[file]);
      expect(configSchema.safeParse(parse(readFileSync(join(dir, 'portcullis.yaml'), 'utf8'))).success).toBe(true);
      expect(policySchema.safeParse(parse(readFileSync(join(dir, 'policy.yaml'), 'utf8'))).success).toBe(true);
      // The other way round: the ConfigMap rebuilt from those files has the same data.
      const rebuilt = run('kubectl', ['create', 'configmap', 'orders-api-portcullis', '-n', 'prod', `--from-file=${join(dir, 'portcullis.yaml')}`, `--from-file=${join(dir, 'policy.yaml')}`, '--dry-run=client', '-o', 'yaml']);
      expect(rebuilt.status, rebuilt.stderr).toBe(0);
      expect(yamlDocs(rebuilt.stdout)[0]!.data).toEqual(data);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Kubernetes versions in the kit', () => {
  it('says preStop.sleep needs Kubernetes 1.30+ (the sleep action is beta, on by default, from 1.30)', () => {
    const manifests = read('deploy/kubernetes/orders-api.yaml');
    expect(manifests).toMatch(/preStop:\s*\n\s*sleep:/);
    for (const text of [read('deploy/README.md'), manifests]) {
      // The first version the text asks for is the kit's: 1.30 (native sidecars alone would do on 1.29).
      expect(/Kubernetes 1\.(\d+)\+/.exec(text)?.[1]).toBe('30');
      expect(text).toMatch(/preStop[\s\S]{0,80}1\.30\+|1\.30\+[\s\S]{0,80}preStop/);
    }
  });
});
