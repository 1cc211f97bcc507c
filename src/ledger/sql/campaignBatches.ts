/**
 * Batch ledger form: a campaign's batches in batch order, a page at a time (keyset on batch_no),
 * each with its exceptions (failed and skipped items). What the completion and exposure reports
 * of a batch-form campaign list: a line per range, and one per exception (design decision 6).
 */
import type { KekRecord, Queryable } from '../types.ts';
import { batchSamples, type BatchSample } from '../batch-samples.ts';

export interface BatchException {
  itemKey: string;
  outcome: 'skipped' | 'failed';
  reason: string;
  detail: string | null;
  from: KekRecord | null;
  /** The KEK its envelope named when it was read, if that could be decided. */
  kekNow: KekRecord | null;
  at: Date;
}

export interface CampaignBatchRow {
  batchNo: number;
  storeId: string;
  lo: string | null;
  hi: string;
  state: 'pending' | 'enqueued' | 'done';
  /** Planned by a delta pass (rows still under the source KEK once the plan had drained). */
  delta: boolean;
  /** Rows the plan counted in the range. */
  planned: number;
  rewrapped: number;
  skipped: number;
  failed: number;
  /**
   * Of `skipped`: rows the plan counted that the range's last claim no longer read, after an
   * earlier claim that may have moved them without counting them (commitBatchRange.ts).
   */
  unconfirmed: number;
  /** The moved items the batch kept as samples, one per KEK it moved items from (batch-samples.ts). */
  samples: BatchSample[];
  movedAt: Date | null;
  doneAt: Date | null;
  /** Claimed more than once, or more often than committed: a claim may have moved items it never counted. */
  retried: boolean;
  exceptions: BatchException[];
}

const kek = (id: string | null, version: string | null, material: string | null): KekRecord | null =>
  id === null ? null : { id, ...(version !== null ? { version } : {}), ...(material !== null ? { materialId: material } : {}) };

export async function campaignBatches(db: Queryable, campaignId: string, page: { limit: number; afterBatchNo?: number }): Promise<CampaignBatchRow[]> {
  const { rows } = await db.query(
    `SELECT batch_no, store_id, lo, hi, state, delta, item_count, rewrapped, skipped, failed, unconfirmed, sample, moved_at, done_at,
            (attempts > 1 OR attempts > commits) AS retried
       FROM rewrap_batches
      WHERE campaign_id = $1 AND hi IS NOT NULL AND batch_no > $2
      ORDER BY batch_no LIMIT $3`,
    [campaignId, page.afterBatchNo ?? -1, page.limit],
  );
  const batches: CampaignBatchRow[] = rows.map((r) => ({
    batchNo: r.batch_no,
    storeId: r.store_id,
    lo: r.lo,
    hi: r.hi,
    state: r.state,
    delta: r.delta,
    planned: r.item_count,
    rewrapped: r.rewrapped,
    skipped: r.skipped,
    failed: r.failed,
    unconfirmed: r.unconfirmed,
    samples: batchSamples(r.sample),
    movedAt: r.moved_at,
    doneAt: r.done_at,
    retried: r.retried,
    exceptions: [],
  }));
  if (batches.length === 0) return batches;
  const byNo = new Map(batches.map((b) => [b.batchNo, b]));
  const { rows: ex } = await db.query(
    `SELECT batch_no, item_key, outcome, reason, detail, from_kek, from_version, from_material, kek_id, kek_version, material_id, at
       FROM rewrap_batch_exceptions
      WHERE campaign_id = $1 AND batch_no = ANY($2::int[])
      ORDER BY batch_no, item_key`,
    [campaignId, batches.map((b) => b.batchNo)],
  );
  for (const e of ex) {
    byNo.get(e.batch_no)?.exceptions.push({
      itemKey: e.item_key,
      outcome: e.outcome,
      reason: e.reason,
      detail: e.detail,
      from: kek(e.from_kek, e.from_version, e.from_material),
      kekNow: kek(e.kek_id, e.kek_version, e.material_id),
      at: e.at,
    });
  }
  return batches;
}
