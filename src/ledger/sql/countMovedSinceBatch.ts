/**
 * How many items of batches numbered `firstBatchNo` or later were rewrapped there: what a delta
 * pass (whose items all land in those batches, see beginDeltaPass) actually moved. An item this
 * campaign rewrapped before and found at the target again keeps 'rewrapped' with its prior
 * outcome (commitBatch); it did not move.
 */
import type { Queryable } from '../types.ts';

export async function countMovedSinceBatch(db: Queryable, campaignId: string, firstBatchNo: number): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM rewrap_campaign_items WHERE campaign_id = $1 AND batch_no >= $2 AND outcome = 'rewrapped' AND prior_outcome IS NULL`,
    [campaignId, firstBatchNo],
  );
  return rows[0]!.n;
}
