/**
 * The rewrap Grafana dashboard, typed as @grafana/schema's `Dashboard`. Edit this file, then
 * regenerate the JSON: `npx tsx deploy/grafana/build-dashboard.ts`.
 * Metric names: src/metrics/process-metrics.ts, src/metrics/backlog-metrics.ts and the recording
 * rules in deploy/prometheus/recording.yml (test/grafana-dashboard.test.ts checks every name).
 */
import { VariableHide, VariableRefresh, VariableSort, type Dashboard, type VariableModel } from '@grafana/schema';
import { PROMETHEUS, layout, stat, timeSeries } from './panels.ts';

const C = 'campaign=~"$campaign"';
const RATE = '$__rate_interval';

const variables: VariableModel[] = [
  {
    type: 'datasource',
    name: 'datasource',
    label: 'Prometheus',
    query: 'prometheus',
    hide: VariableHide.dontHide,
    refresh: VariableRefresh.onDashboardLoad,
  },
  {
    // Shows campaign names, filters on campaign ids (names need not be unique).
    type: 'query',
    name: 'campaign',
    label: 'Campaign',
    datasource: PROMETHEUS,
    query: { qryType: 3, query: 'query_result(max by (campaign, name) (rewrap_campaign_state{state!~"completed|cancelled"} == 1))', refId: 'PrometheusVariableQueryEditor-VariableQuery' },
    regex: '/campaign="(?<value>[^"]+)".*name="(?<text>[^"]+)"/',
    multi: true,
    includeAll: true,
    allValue: '.*',
    current: { text: 'All', value: '$__all' },
    refresh: VariableRefresh.onTimeRangeChanged,
    sort: VariableSort.alphabeticalAsc,
    hide: VariableHide.dontHide,
  },
];

const sections = [
  {
    title: 'Backlog',
    panels: [
      stat({
        title: 'Items remaining',
        description: 'Items of the selected campaigns without an outcome yet (rewrap_campaign_items_remaining, from `rewrap api`).',
        queries: [{ expr: `sum(rewrap_campaign_items_remaining{${C}})`, legend: 'remaining' }],
      }),
      stat({
        title: 'Workers up',
        description: 'Worker processes Prometheus scrapes (rewrap_up{role="worker"}). 0 while a campaign runs: see alert RewrapWorkersAbsent.',
        queries: [{ expr: 'count(rewrap_up{role="worker"} == 1) or vector(0)', legend: 'workers' }],
        steps: [{ color: 'red', value: null }, { color: 'green', value: 1 }],
      }),
      stat({
        title: 'Item success (1h)',
        description: 'Share of item attempts that were not bad in the last hour; SLO 99.9 % (see deploy/prometheus/recording.yml for what counts as bad).',
        queries: [{ expr: 'min(rewrap:item_attempts_good:ratio_rate1h)', legend: 'success' }],
        unit: 'percentunit',
        steps: [{ color: 'red', value: null }, { color: 'orange', value: 0.99 }, { color: 'green', value: 0.999 }],
      }),
      stat({
        title: 'Jobs in flight',
        description: 'Batch jobs the workers are working on right now (rewrap_jobs_in_flight, summed over processes).',
        queries: [{ expr: 'sum(rewrap_jobs_in_flight)', legend: 'jobs' }],
      }),
      timeSeries({
        title: 'Backlog burn-down per campaign',
        description: 'Items left per campaign. A flat line while the campaign runs means nothing drains.',
        queries: [{ expr: `rewrap_campaign_items_remaining{${C}}`, legend: '{{name}}' }],
        min: 0,
      }),
      timeSeries({
        title: 'Inventory per KEK version',
        description: 'Items known to the ledger by store and the KEK (id @ version) that wraps them: the old version drains, the new one fills. Not filtered by campaign (the inventory is per store).',
        queries: [{ expr: 'sum by (store, kek_id, kek_version) (rewrap_inventory_items{version="current"})', legend: '{{store}} {{kek_id}} @ {{kek_version}}' }],
        stacked: true,
        min: 0,
      }),
      timeSeries({
        title: 'Campaign items by status',
        description: 'Planned, rewrapped, skipped and failed items per campaign, from the ledger.',
        queries: [{ expr: `sum by (name, status) (rewrap_campaign_items{${C}})`, legend: '{{name}} {{status}}' }],
        w: 24,
      }),
    ],
  },
  {
    title: 'Rate and deadline',
    panels: [
      timeSeries({
        title: 'Rate vs budget',
        description: "KEK provider calls per second by campaign kind (routine campaigns share one KMS budget, incidents have their own) against each campaign's budget (options.kmsRequestsPerSecond; no line when unlimited), and items reaching an outcome per second per campaign as the ledger sees it.",
        queries: [
          { expr: `sum by (provider, campaign_kind) (rate(rewrap_kek_requests_total[${RATE}]))`, legend: 'KEK calls/s {{provider}} {{campaign_kind}}' },
          { expr: `sum by (name) (rewrap_campaign_done_rate{${C}})`, legend: 'items done/s {{name}}' },
          { expr: `rewrap_campaign_kms_budget_requests_per_second{${C}}`, legend: 'budget {{name}}' },
        ],
        unit: 'reqps',
        min: 0,
      }),
      timeSeries({
        title: 'ETA vs time left to deadline',
        description: 'Projected seconds to drain each campaign at its current rate, next to the seconds left until its deadline. ETA above time left: the campaign will be late (alert RewrapCampaignDeadlineAtRisk). No ETA line: nothing moves.',
        queries: [
          { expr: `rewrap_campaign_eta_seconds{${C}}`, legend: '{{name}} ETA' },
          { expr: `rewrap:campaign_deadline:time_left_seconds{${C}}`, legend: '{{name}} time left' },
        ],
        unit: 's',
      }),
      timeSeries({
        title: 'Item outcomes',
        description: 'Item attempts per second by result (rewrapped, skipped, failed, retry), by campaign kind. Worker metrics carry no campaign id, so this is not filtered by campaign.',
        queries: [{ expr: `sum by (result, campaign_kind) (rate(rewrap_items_total[${RATE}]))`, legend: '{{result}} ({{campaign_kind}})' }],
        unit: 'ops',
        stacked: true,
      }),
      timeSeries({
        title: 'Item success ratio vs SLO',
        description: 'Share of item attempts that were not bad, over 5m and 1h; the dashed line is the 99.9 % objective.',
        queries: [
          { expr: 'rewrap:item_attempts_good:ratio_rate5m', legend: '5m {{job}}' },
          { expr: 'rewrap:item_attempts_good:ratio_rate1h', legend: '1h {{job}}' },
        ],
        unit: 'percentunit',
        max: 1,
        thresholdLine: { value: 0.999, color: 'red' },
      }),
    ],
  },
  {
    title: 'Errors',
    panels: [
      timeSeries({
        title: 'Failures and retries by reason',
        description: 'Item attempts per second that failed (permanent, recorded in the ledger) or will be retried (transient), by reason code (src/core/reasons.ts).',
        queries: [{ expr: `sum by (result, reason) (rate(rewrap_items_total{result=~"failed|retry"}[${RATE}]))`, legend: '{{result}}: {{reason}}' }],
        unit: 'ops',
        stacked: true,
      }),
      timeSeries({
        title: 'KMS throttles',
        description: 'KEK provider calls the provider throttled, per second, and as a share of all calls (alert RewrapKmsThrottlingSustained above 5 % for 10 minutes).',
        queries: [
          { expr: `sum by (provider) (rate(rewrap_kek_requests_total{outcome="throttled"}[${RATE}]))`, legend: 'throttled/s {{provider}}' },
          { expr: 'rewrap:kek_requests_throttled:ratio_rate5m', legend: 'throttled share {{provider}}' },
        ],
        unit: 'short',
        thresholdLine: { value: 0.05, color: 'orange' },
      }),
      timeSeries({
        title: 'KEK call errors',
        description: 'KEK provider calls by outcome other than ok, per second.',
        queries: [{ expr: `sum by (provider, operation, outcome) (rate(rewrap_kek_requests_total{outcome!="ok"}[${RATE}]))`, legend: '{{provider}} {{operation}} {{outcome}}' }],
        unit: 'reqps',
      }),
      timeSeries({
        title: 'Store operations',
        description: 'Envelope store reads and conditional writes per second by outcome (conflict = the item changed under us; it is re-read, never overwritten).',
        queries: [{ expr: `sum by (store_kind, operation, outcome) (rate(rewrap_store_operations_total[${RATE}]))`, legend: '{{store_kind}} {{operation}} {{outcome}}' }],
        unit: 'ops',
      }),
    ],
  },
  {
    title: 'Latency and ledger',
    panels: [
      timeSeries({
        title: 'KEK call latency',
        description: 'Percentiles of KEK provider call latency (KMS ReEncrypt or local rewrap), from rewrap_kek_request_duration_seconds.',
        queries: [0.5, 0.9, 0.99].map((q) => ({
          expr: `histogram_quantile(${q}, sum by (provider, le) (rate(rewrap_kek_request_duration_seconds_bucket[${RATE}])))`,
          legend: `p${q * 100} {{provider}}`,
        })),
        unit: 's',
        min: 0,
      }),
      timeSeries({
        title: 'Ledger commit latency',
        description: 'Percentiles of the time to commit one batch of outcomes to the ledger.',
        queries: [0.5, 0.99].map((q) => ({
          expr: `histogram_quantile(${q}, sum by (le) (rate(rewrap_batch_commit_duration_seconds_bucket[${RATE}])))`,
          legend: `p${q * 100}`,
        })),
        unit: 's',
        min: 0,
      }),
      timeSeries({
        title: 'Ledger commits by outcome',
        description: 'Batch commits per second: committed, fenced (another worker owns the batch now; not an error) and error (alert RewrapLedgerCommitErrors).',
        queries: [{ expr: `sum by (outcome) (rate(rewrap_batch_commits_total[${RATE}]))`, legend: '{{outcome}}' }],
        unit: 'ops',
      }),
      timeSeries({
        title: 'Jobs in flight per process',
        description: 'Batch jobs each worker process is working on.',
        queries: [{ expr: 'sum by (instance) (rewrap_jobs_in_flight)', legend: '{{instance}}' }],
        min: 0,
      }),
    ],
  },
];

export const rewrapDashboard: Dashboard = {
  uid: 'rewrap-overview',
  title: 'rewrap: key rotation',
  description: 'Backlog, rate, deadline, errors and latency of rewrap campaigns. Source: deploy/grafana/dashboard.ts.',
  tags: ['rewrap', 'kms'],
  editable: true,
  // 39 = Grafana 10.4 / 11; newer Grafana versions migrate it on load.
  schemaVersion: 39,
  time: { from: 'now-6h', to: 'now' },
  refresh: '30s',
  timezone: 'browser',
  graphTooltip: 1,
  templating: { list: variables },
  annotations: { list: [] },
  panels: layout(sections),
};
