/**
 * The end of a batch job: audit the writes that landed, commit the outcomes in one ledger
 * transaction, count them in the metrics.
 * Invariant 1: called only after the store writes the outcomes describe.
 */
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import { auditWrite } from '../src/rewrap/audit.ts';
import type { Logger } from '../src/log.ts';
import { commitBatch } from '../src/ledger/index.ts';
import type { ItemOutcomeRecord } from '../src/ledger/types.ts';
import type { ItemOutcome, OutcomeCounts } from '../src/rewrap/outcome.ts';
import { countOutcomes } from '../src/rewrap/outcome.ts';
import type { ProcessMetrics } from '../src/metrics/process-metrics.ts';
import { storeKind } from '../src/core/store-id.ts';

export interface CommittedBatch {
  campaignId: string;
  batchNo: number;
  owner: string;
  storeId: string;
  /** Metric labels. */
  provider: string;
  campaignKind: string;
}

/**
 * `final`: no item is left for a retry and the batch was not interrupted, so the batch is done.
 * 'fenced': another worker holds the batch now; nothing was committed (it re-reads every item).
 */
export async function commitOutcomes(
  pool: pg.Pool,
  metrics: ProcessMetrics | undefined,
  log: Logger,
  b: CommittedBatch,
  outcomes: ItemOutcome[],
  interrupted: boolean,
): Promise<{ status: 'committed' | 'fenced'; counts: OutcomeCounts }> {
  /* The writes have landed, whatever the commit does next (fenced, failing): audit them now. */
  for (const o of outcomes) auditWrite(log, b.storeId, o);
  const records = outcomes.flatMap(toRecord(b.storeId));
  const counts = countOutcomes(outcomes);
  const final = !interrupted && counts.retry === 0;
  const m = metrics;
  const commitStarted = performance.now();
  const commit = await commitBatch(pool, { campaignId: b.campaignId, batchNo: b.batchNo, owner: b.owner, outcomes: records, final }).catch((err: unknown) => {
    m?.batchCommits.inc({ outcome: 'error' });
    throw err;
  });
  m?.batchCommits.inc({ outcome: commit.status });
  m?.batchCommitLatency.observe({ outcome: commit.status }, (performance.now() - commitStarted) / 1000);
  if (m) {
    const labels = { store_kind: storeKind(b.storeId) ?? 'pg', provider: b.provider, campaign_kind: b.campaignKind };
    for (const o of outcomes) m.items.inc({ ...labels, result: o.status, reason: o.status === 'rewrapped' ? '' : o.reason });
  }
  if (commit.status === 'fenced') {
    log.warn({ leaseOwner: commit.leaseOwner }, 'batch lease was taken over; nothing committed (the new owner re-reads every item)');
    return { status: 'fenced', counts };
  }
  log.info({ ...counts, changed: commit.changed, batchDone: commit.batchDone }, 'batch committed');
  if (commit.autoPaused) log.warn('campaign auto-paused: failure threshold crossed');
  return { status: 'committed', counts };
}

const toRecord =
  (storeId: string) =>
  (o: ItemOutcome): ItemOutcomeRecord[] => {
    switch (o.status) {
      case 'rewrapped':
        return [{ storeId, itemKey: o.key, outcome: 'rewrapped', from: o.from, to: o.to }];
      case 'skipped':
        return [{ storeId, itemKey: o.key, outcome: 'skipped', reason: o.reason, currentKek: o.current }];
      case 'failed':
        return [{ storeId, itemKey: o.key, outcome: 'failed', reason: o.reason, detail: o.detail, currentKek: o.current }];
      case 'retry':
        return [];
    }
  };
