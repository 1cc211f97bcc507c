/**
 * What a delta pass changed, from the batches numbered `firstBatchNo` or later (every item the
 * pass planned or re-queued lands in one, see beginDeltaPass):
 * - moved: items rewrapped there. An item this campaign rewrapped before and found at the target
 *   again keeps 'rewrapped' with its prior outcome (commitBatch): it did not move.
 * - retriedBatches: batches claimed more than once. A claim whose commit was lost (fenced, failed,
 *   killed) may have written items that the next claim then finds at the target and records as
 *   skipped: such a pass may have moved items without saying so.
 */
import type { Queryable } from '../types.ts';

export async function deltaPassChanges(db: Queryable, campaignId: string, firstBatchNo: number): Promise<{ moved: number; retriedBatches: number }> {
  const { rows } = await db.query<{ moved: number; retried: number }>(
    `SELECT (SELECT count(*) FROM rewrap_campaign_items
              WHERE campaign_id = $1 AND batch_no >= $2 AND outcome = 'rewrapped' AND prior_outcome IS NULL)::int AS moved,
            (SELECT count(*) FROM rewrap_batches WHERE campaign_id = $1 AND batch_no >= $2 AND attempts > 1)::int AS retried`,
    [campaignId, firstBatchNo],
  );
  return { moved: rows[0]!.moved, retriedBatches: rows[0]!.retried };
}
