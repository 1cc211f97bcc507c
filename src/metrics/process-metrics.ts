/**
 * Metrics every worker and scheduler process exports at /metrics (prom-client).
 * Invariant 6: labels are low-cardinality: store kind, provider, reason code, outcome. Never an
 * item key, a bucket name or a row id.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const METRIC_PREFIX = 'rewrap_';

export class ProcessMetrics {
  readonly registry = new Registry();
  readonly items: Counter<'result' | 'reason' | 'store_kind' | 'provider' | 'campaign_kind'>;
  readonly kekRequests: Counter<'provider' | 'operation' | 'outcome' | 'campaign_kind'>;
  readonly kekLatency: Histogram<'provider' | 'operation'>;
  readonly storeOps: Counter<'store_kind' | 'operation' | 'outcome'>;
  readonly batchCommitLatency: Histogram<'outcome'>;
  readonly batchCommits: Counter<'outcome'>;
  readonly jobsInFlight: Gauge;
  readonly up: Gauge<'role'>;

  constructor(role: 'worker' | 'scheduler' | 'api') {
    const r = this.registry;
    /* prom-client's names already start with process_ / nodejs_: rewrap_process_cpu_seconds_total,
       rewrap_nodejs_eventloop_lag_seconds, ... */
    collectDefaultMetrics({ register: r, prefix: 'rewrap_' });
    // prom-client names three gauges `*_total`, which `promtool check metrics` rejects (a counter
    // suffix on a gauge): every role's /metrics must pass promtool, so they go.
    for (const x of ['handles', 'requests', 'resources']) r.removeSingleMetric(`rewrap_nodejs_active_${x}_total`);
    this.up = new Gauge({ name: 'rewrap_up', help: 'A rewrap process of this role is running.', labelNames: ['role'], registers: [r] });
    this.up.set({ role }, 1);
    this.items = new Counter({
      name: 'rewrap_items_total',
      help: 'Items processed by workers, by result (rewrapped, skipped, failed, retry) and reason code.',
      labelNames: ['result', 'reason', 'store_kind', 'provider', 'campaign_kind'],
      registers: [r],
    });
    this.kekRequests = new Counter({
      name: 'rewrap_kek_requests_total',
      help: 'Calls to the KEK provider (KMS ReEncrypt, or local keyring rewraps), by outcome (ok, throttled, error) and campaign kind (routine and incident campaigns have separate KMS budgets).',
      labelNames: ['provider', 'operation', 'outcome', 'campaign_kind'],
      registers: [r],
    });
    this.kekLatency = new Histogram({
      name: 'rewrap_kek_request_duration_seconds',
      help: 'Latency of KEK provider calls.',
      labelNames: ['provider', 'operation'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [r],
    });
    this.storeOps = new Counter({
      name: 'rewrap_store_operations_total',
      help: 'Envelope store reads and conditional writes, by outcome (ok, conflict = precondition failed, error).',
      labelNames: ['store_kind', 'operation', 'outcome'],
      registers: [r],
    });
    this.batchCommitLatency = new Histogram({
      name: 'rewrap_batch_commit_duration_seconds',
      help: 'Time to commit one batch of outcomes to the ledger.',
      labelNames: ['outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [r],
    });
    this.batchCommits = new Counter({
      name: 'rewrap_batch_commits_total',
      help: 'Ledger commits of batch outcomes, by outcome (committed, fenced, error).',
      labelNames: ['outcome'],
      registers: [r],
    });
    this.jobsInFlight = new Gauge({ name: 'rewrap_jobs_in_flight', help: 'Batch jobs this process is working on.', registers: [r] });
    // A labelled counter appears only after its first increment, so rate() would never see the
    // first error of a process: start the failure series at zero.
    for (const outcome of ['committed', 'fenced', 'error']) this.batchCommits.inc({ outcome }, 0);
  }
}
