/**
 * The scale model (issue 17, point 5): from per-item and per-batch costs measured by
 * `npm run bench -- --scale`, the time and resources to rotate `items` at a KMS quota of `quota`
 * req/s. Pure arithmetic; the formulas are the README's ("Scale model").
 *
 *   T_kms      = items / quota                                   (the floor: the quota)
 *   pgCores    = quota * pgCpuPerItem                            (Postgres CPU while running at the quota)
 *   workerCores= quota * workerCpuPerItem                        (worker CPU; N workers of one core each)
 *   redisCores = quota / batchSize * redisCpuPerBatch + budget   (BullMQ per batch, plus the budget:)
 *   budget     = per request: quota * redisCpuPerToken; in blocks: roundTripsPerSec * redisCpuPerRoundTrip,
 *                roundTripsPerSec = workers * 1000 / blockMs (a few per second per worker)
 *   rate       = min(quota, pgCoresAvailable / pgCpuPerItem, redisCoresAvailable(1) / (redisCores / quota))
 *   T          = items / rate;  planning runs ahead of the workers at planItemsPerSec, so it bounds T
 *                only if items / planItemsPerSec > T
 *   ledger     = items * ledgerBytesPerItem (rows: one item row + one inventory row per item, one batch row per batch)
 *   delta pass (the final pass's search for late writes, after the main pass drained; adds to T):
 *     pg, no index on the KEK columns: items * deltaPgSecondsPerTableRow (one walk of the id index);
 *     pg, index on (kek id, kek version, id): lateItems * deltaPgSecondsPerLateRowIndexed;
 *     s3 listing: items / 1000 ListObjectsV2 pages, one after another (continuation tokens), at
 *       s3ListPageSeconds each (ListObjectsV2 has no time filter: every key is listed again, and
 *       only the keys modified since the plan began, not planned yet, are planned);
 *     s3-inventory / s3-manifest: no search (a report is fixed); the next report takes late writes.
 */

export interface ScaleInputs {
  batchSize: number;
  planItemsPerSec: number;
  /** CPU seconds per item (or per batch / round trip / token), measured. */
  pgCpuPerItemPlan: number;
  pgCpuPerItemRun: number;
  workerCpuPerItem: number;
  schedulerCpuPerBatch: number;
  redisCpuPerBatch: number;
  ledgerBytesPerItem: number;
  /** Ledger rows per item besides the batch rows: 2 in the per-item form (a plan row, an inventory row), about 0 in the batch form (exceptions only). Default 2. */
  ledgerRowsPerItem?: number;
  /** The delta pass's search, measured on the pg source (bench/scenarios/s-scale.ts). */
  deltaPgSecondsPerTableRow: number;
  deltaPgSecondsPerLateRowIndexed: number;
  budget: { redisCpuPerToken: number; redisCpuPerRoundTrip: number; workerCpuPerTokenBlocks: number; workerCpuPerTokenPerRequest: number; blockMs: number };
}

export interface ScaleCase {
  items: number;
  quota: number;
  pgCoresAvailable: number;
  workerCoresEach: number;
  /** Items written under the source KEK after the plan (found by the delta pass). */
  lateItems: number;
  /** Seconds per ListObjectsV2 page of 1,000 keys: an assumption, not measured here (no AWS). */
  s3ListPageSeconds: number;
}

export interface ScaleOutput {
  items: number;
  quota: number;
  kmsHours: number;
  planningHours: number;
  ledgerRows: number;
  ledgerGB: number;
  pgCoresAtQuota: number;
  workerCoresAtQuota: number;
  workers: number;
  redisCoresBullmq: number;
  budgetRedisCoresPerRequest: number;
  budgetRedisCoresBlocks: number;
  budgetWorkerCoresPerRequest: number;
  budgetWorkerCoresBlocks: number;
  pgCoresAvailable: number;
  rateLimitedBy: 'kms quota' | 'postgres (ledger)' | 'redis' | 'planning';
  achievableRate: number;
  hours: number;
  quotaUsedPercent: number;
  deltaPgHoursNoIndex: number;
  deltaPgSecondsKekIndex: number;
  deltaS3ListRequests: number;
  deltaS3ListHours: number;
  s3ListPageSecondsAssumed: number;
}

export function scaleModel(m: ScaleInputs, c: ScaleCase): ScaleOutput {
  const pgCoresAtQuota = c.quota * m.pgCpuPerItemRun;
  const workerCoresAtQuota = c.quota * (m.workerCpuPerItem + m.budget.workerCpuPerTokenBlocks);
  const workers = Math.max(1, Math.ceil(workerCoresAtQuota / c.workerCoresEach));
  const redisCoresBullmq = (c.quota / m.batchSize) * m.redisCpuPerBatch;
  const roundTripsPerSec = (workers * 1000) / m.budget.blockMs;
  const budgetRedisCoresBlocks = roundTripsPerSec * m.budget.redisCpuPerRoundTrip;
  const budgetRedisCoresPerRequest = c.quota * m.budget.redisCpuPerToken;
  const redisCores = redisCoresBullmq + budgetRedisCoresBlocks;
  const pgRate = c.pgCoresAvailable / m.pgCpuPerItemRun;
  const redisRate = 1 / (redisCores / c.quota); // one Redis core
  const rate = Math.min(c.quota, pgRate, redisRate);
  let hours = c.items / rate / 3600;
  const planningHours = c.items / m.planItemsPerSec / 3600;
  let limitedBy: ScaleOutput['rateLimitedBy'] = rate === c.quota ? 'kms quota' : rate === pgRate ? 'postgres (ledger)' : 'redis';
  if (planningHours > hours) {
    hours = planningHours;
    limitedBy = 'planning';
  }
  return {
    items: c.items,
    quota: c.quota,
    kmsHours: c.items / c.quota / 3600,
    planningHours,
    ledgerRows: (m.ledgerRowsPerItem ?? 2) * c.items + Math.ceil(c.items / m.batchSize),
    ledgerGB: (c.items * m.ledgerBytesPerItem) / 1e9,
    pgCoresAtQuota,
    workerCoresAtQuota,
    workers,
    redisCoresBullmq,
    budgetRedisCoresPerRequest,
    budgetRedisCoresBlocks,
    budgetWorkerCoresPerRequest: c.quota * m.budget.workerCpuPerTokenPerRequest,
    budgetWorkerCoresBlocks: c.quota * m.budget.workerCpuPerTokenBlocks,
    pgCoresAvailable: c.pgCoresAvailable,
    rateLimitedBy: limitedBy,
    achievableRate: Math.round(c.items / (hours * 3600)),
    hours,
    quotaUsedPercent: (100 * c.items) / (hours * 3600) / c.quota,
    deltaPgHoursNoIndex: (c.items * m.deltaPgSecondsPerTableRow) / 3600,
    deltaPgSecondsKekIndex: c.lateItems * m.deltaPgSecondsPerLateRowIndexed,
    deltaS3ListRequests: Math.ceil(c.items / 1000),
    deltaS3ListHours: (Math.ceil(c.items / 1000) * c.s3ListPageSeconds) / 3600,
    s3ListPageSecondsAssumed: c.s3ListPageSeconds,
  };
}

const f = (x: number, d = 1) => x.toLocaleString('en', { maximumFractionDigits: d });

export function describeScale(o: ScaleOutput): string {
  return [
    `${f(o.items / 1e9, 1)}B items at ${f(o.quota, 0)} req/s, Postgres ${o.pgCoresAvailable} cores: ${f(o.hours)} h (${o.rateLimitedBy}; ${f(o.achievableRate, 0)} items/s, ${f(o.quotaUsedPercent, 0)} % of the quota; the quota alone: ${f(o.kmsHours)} h)`,
    `  planning ${f(o.planningHours)} h; ledger ${o.ledgerRows >= 1e9 ? `${f(o.ledgerRows / 1e9, 2)}B` : `${f(o.ledgerRows / 1e6, 2)}M`} rows, ${f(o.ledgerGB, o.ledgerGB < 10 ? 2 : 0)} GB`,
    `  at the quota: Postgres ${f(o.pgCoresAtQuota, 2)} cores, workers ${f(o.workerCoresAtQuota, 2)} cores (${o.workers} workers), Redis (BullMQ) ${f(o.redisCoresBullmq, 3)} cores`,
    `  delta pass search: pg ${f(o.deltaPgHoursNoIndex, 2)} h without an index on the KEK columns, ${f(o.deltaPgSecondsKekIndex, 1)} s with one; s3 listing ${f(o.deltaS3ListRequests / 1e6, 1)}M LIST requests, ${f(o.deltaS3ListHours)} h at ${o.s3ListPageSecondsAssumed} s a page (assumed); reports: none`,
    `  budget: per request ${f(o.budgetRedisCoresPerRequest, 2)} Redis cores + ${f(o.budgetWorkerCoresPerRequest, 2)} worker cores; in blocks ${f(o.budgetRedisCoresBlocks, 4)} Redis cores + ${f(o.budgetWorkerCoresBlocks, 2)} worker cores`,
  ].join('\n');
}
