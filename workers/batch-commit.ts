/**
 * The end of a batch job: audit the writes that landed, commit the outcomes in one ledger
 * transaction, count them in the metrics.
 * Invariant 1: called only after the store writes the outcomes describe.
 */
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import { auditWrites } from '../src/rewrap/audit.ts';
import type { Logger } from '../src/log.ts';
import { commitBatch, commitBatchRange } from '../src/ledger/index.ts';
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
  /** Batch ledger form: the claim's attempt number (commitBatchRange). */
  attempt?: number;
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
  auditWrites(log, b.storeId, outcomes);
  const records = outcomes.flatMap(toRecord(b.storeId));
  const counts = countOutcomes(outcomes);
  const final = !interrupted && counts.retry === 0;
  const m = metrics;
  const commitStarted = performance.now();
  const req = { campaignId: b.campaignId, batchNo: b.batchNo, owner: b.owner, outcomes: records, final, attempt: b.attempt };
  const commit = await (b.attempt === undefined ? commitBatch(pool, req) : commitBatchRange(pool, req)).catch((err: unknown) => {
    m?.batchCommits.inc({ outcome: 'error' });
    throw err;
  });
  m?.batchCommits.inc({ outcome: commit.status });
  m?.batchCommitLatency.observe({ outcome: commit.status }, (performance.now() - commitStarted) / 1000);
  if (m) {
    const labels = { store_kind: storeKind(b.storeId) ?? 'pg', provider: b.provider, campaign_kind: b.campaignKind };
    /* Counted once per (result, reason) of the batch, not once per item: prom-client hashes the
       label set on every inc (issue 17, point 2). */
    for (const [key, n] of countByResultReason(outcomes)) {
      const sep = key.indexOf('\u0000');
      m.items.inc({ ...labels, result: key.slice(0, sep), reason: key.slice(sep + 1) }, n);
    }
  }
  if (commit.status === 'fenced') {
    log.warn({ leaseOwner: commit.leaseOwner }, 'batch lease was taken over; nothing committed (the new owner re-reads every item)');
    return { status: 'fenced', counts };
  }
  log.info({ ...counts, changed: commit.changed, batchDone: commit.batchDone }, 'batch committed');
  if (commit.autoPaused) log.warn('campaign auto-paused: failure threshold crossed');
  return { status: 'committed', counts };
}

function countByResultReason(outcomes: readonly ItemOutcome[]): Map<string, number> {
  const n = new Map<string, number>();
  for (const o of outcomes) {
    const key = o.status === 'rewrapped' ? 'rewrapped\u0000' : `${o.status}\u0000${o.reason}`;
    n.set(key, (n.get(key) ?? 0) + 1);
  }
  return n;
}

const toRecord =
  (storeId: string) =>
  (o: ItemOutcome): ItemOutcomeRecord[] => {
    switch (o.status) {
      case 'rewrapped':
        return [{ storeId, itemKey: o.key, outcome: 'rewrapped', from: o.from, to: o.to, envelopeFileEtag: o.envelopeFile?.etag }];
      case 'skipped':
        return [{ storeId, itemKey: o.key, outcome: 'skipped', reason: o.reason, currentKek: o.current, envelopeFileEtag: o.envelopeFile?.etag }];
      case 'failed':
        return [{ storeId, itemKey: o.key, outcome: 'failed', reason: o.reason, detail: o.detail, currentKek: o.current }];
      case 'retry':
        return [];
    }
  };
