/**
 * Batch ledger form: the canary is about to write rows of this range. Counted as a claim of it
 * (attempts + 1, no lease), so that the range's last commit treats the rows its plan counted and
 * no commit did as unconfirmed (commitBatchRange): a canary write whose count was lost (stopped
 * between the write and recordCanaryRangeMoves) keeps `planned` and is reported moved-unconfirmed,
 * as a worker's lost commit is. Refused (false) for a range that is done or leased by a worker.
 */
import type { Queryable } from '../types.ts';

export async function beginCanaryRange(db: Queryable, campaignId: string, batchNo: number): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE rewrap_batches SET attempts = attempts + 1
      WHERE campaign_id = $1 AND batch_no = $2 AND state <> 'done' AND (lease_until IS NULL OR lease_until <= now())`,
    [campaignId, batchNo],
  );
  return (rowCount ?? 0) > 0;
}
