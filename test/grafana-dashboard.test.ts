/**
 * The Grafana dashboard is what Grafana's published schema (@grafana/schema) accepts, the JSON in
 * the repo is exactly what its typed source generates, and every query in the dashboard and in
 * the Prometheus rules names only metrics rewrap exports (or the rules record).
 */
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { DASHBOARD_JSON_PATH, renderDashboardJson } from '../deploy/grafana/build-dashboard.ts';
import { metricNamesIn } from '../deploy/prometheus/promql-names.ts';
import { RULE_FILES, readRules } from '../deploy/prometheus/rule-files.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const METRICS_DIR = path.join(ROOT, 'src', 'metrics');

interface DashboardPanel {
  id: number;
  type: string;
  title?: string;
  gridPos?: { x: number; y: number; w: number; h: number };
  targets?: { expr?: string }[];
}
interface DashboardJson {
  uid: string;
  panels: DashboardPanel[];
  templating: { list: { name: string; type: string; query?: string | { query?: string } }[] };
}

/** Names from `new Counter|Gauge|Histogram|Summary({ name: '...' })` in src/metrics/*.ts, plus default process metrics. */
function exportedMetricNames(): Set<string> {
  const names = new Set<string>();
  for (const file of readdirSync(METRICS_DIR).filter((f) => f.endsWith('.ts'))) {
    const src = readFileSync(path.join(METRICS_DIR, file), 'utf8');
    for (const m of src.matchAll(/new (Counter|Gauge|Histogram|Summary)\(\{[^}]*?name:\s*'([^']+)'/gs)) {
      const [, type, name] = m;
      names.add(name);
      if (type === 'Histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
      if (type === 'Summary') for (const s of ['_sum', '_count']) names.add(name + s);
    }
    // collectDefaultMetrics({ ..., prefix: '...' }): ask prom-client which names that yields.
    for (const m of src.matchAll(/collectDefaultMetrics\(\{[^}]*prefix:\s*'([^']+)'/g)) {
      const registry = new Registry();
      collectDefaultMetrics({ register: registry, prefix: m[1] });
      for (const metric of registry.getMetricsAsArray()) {
        const name = (metric as unknown as { name: string }).name;
        names.add(name);
        if (metric instanceof Histogram) for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
      }
    }
  }
  return names;
}

function tsc(project: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '--noEmit', '-p', project], { cwd: ROOT, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, output: `${stdout}${stderr}${err && typeof err.code !== 'number' ? err.message : ''}` });
    });
  });
}

const dashboardText = readFileSync(DASHBOARD_JSON_PATH, 'utf8');
const dashboard = JSON.parse(dashboardText) as DashboardJson;
const queryPanels = dashboard.panels.filter((p) => p.type !== 'row');

describe('deploy/grafana/rewrap-dashboard.json', () => {
  it('its typed source (deploy/grafana/*.ts) type-checks against @grafana/schema', async () => {
    const r = await tsc('deploy/grafana/tsconfig.json');
    if (r.code !== 0) throw new Error(`tsc found errors in the dashboard source against @grafana/schema's Dashboard type:\n${r.output}`);
  });

  it('is exactly what deploy/grafana/dashboard.ts generates', () => {
    if (dashboardText !== renderDashboardJson()) {
      throw new Error('deploy/grafana/rewrap-dashboard.json is not what deploy/grafana/dashboard.ts generates: run `npx tsx deploy/grafana/build-dashboard.ts` and commit the result');
    }
  });

  it('has a campaign variable the backlog panels use, unique panel ids, and panels inside the 24-column grid', () => {
    expect(dashboard.uid).toMatch(/^[A-Za-z0-9_-]{8,40}$/);
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(expect.arrayContaining(['datasource', 'campaign']));
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dashboard.panels) {
      expect(p.gridPos, `panel ${p.id} ${p.title}`).toBeDefined();
      expect(p.gridPos!.x + p.gridPos!.w, `panel ${p.id} ${p.title} is wider than the grid`).toBeLessThanOrEqual(24);
    }
    const exprs = queryPanels.flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ''));
    expect(exprs.filter((e) => e.includes('campaign=~"$campaign"')).length).toBeGreaterThanOrEqual(5);
    for (const p of queryPanels) expect(p.targets?.length, `panel ${p.id} ${p.title} has no query`).toBeGreaterThan(0);
  });

  it('finds metric names in PromQL the way the cross-check below relies on', () => {
    expect(metricNamesIn('histogram_quantile(0.99, sum by (le, provider) (rate(a_seconds_bucket{x="}{"}[$__rate_interval])))')).toEqual(['a_seconds_bucket']);
    expect(metricNamesIn('b:rec:ratio_rate5m > (14.4 * 0.001) and on (campaign) c_total{state="running"} == 1 unless absent(d_up)').sort()).toEqual(['b:rec:ratio_rate5m', 'c_total', 'd_up']);
    expect(metricNamesIn('vector($kms_budget) or time() - e offset 5m')).toEqual(['e']);
  });

  it('every query in the dashboard and the rules names only exported metrics or recording rules', () => {
    const rules = RULE_FILES.flatMap((f) => readRules(f));
    const known = exportedMetricNames();
    // The parse found the metrics we know exist (so an empty parse cannot pass silently).
    for (const n of ['rewrap_items_total', 'rewrap_kek_request_duration_seconds_bucket', 'rewrap_campaign_items_remaining', 'rewrap_inventory_items']) {
      expect(known.has(n), `expected ${n} among the metrics parsed from src/metrics`).toBe(true);
    }
    expect([...known].some((n) => n.endsWith('process_cpu_seconds_total')), 'default process metrics among the parsed names').toBe(true);
    for (const r of rules) if (r.kind === 'record') known.add(r.name);

    const queries: { where: string; expr: string }[] = [
      ...queryPanels.flatMap((p) => (p.targets ?? []).map((t, i) => ({ where: `dashboard panel ${p.id} "${p.title}" query ${i}`, expr: t.expr ?? '' }))),
      ...dashboard.templating.list
        .filter((v) => v.type === 'query')
        .map((v) => ({ where: `dashboard variable $${v.name}`, expr: (typeof v.query === 'string' ? v.query : v.query?.query ?? '').replace(/^query_result\((.*)\)$/s, '$1') })),
      ...rules.map((r) => ({ where: `${r.file}:${r.line} ${r.kind} ${r.name}`, expr: r.expr })),
    ];
    const unknown: string[] = [];
    for (const q of queries) {
      for (const name of metricNamesIn(q.expr)) if (!known.has(name)) unknown.push(`${q.where}: ${name}`);
    }
    expect(queries.filter((q) => metricNamesIn(q.expr).length === 0 && !/^vector\(/.test(q.expr)).map((q) => q.where)).toEqual([]);
    if (unknown.length) throw new Error(`queries name metrics that src/metrics/*.ts does not export and no recording rule defines:\n  ${unknown.join('\n  ')}`);
  });
});
