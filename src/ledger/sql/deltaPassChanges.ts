/**
 * What a delta pass changed, from the batches numbered `firstBatchNo` or later (every item the
 * pass planned or re-queued lands in one, see beginDeltaPass):
 * - moved: items rewrapped there. An item this campaign rewrapped before and found at the target
 *   again keeps 'rewrapped' with its prior outcome (commitBatch): it did not move.
 * - lostClaims: batches claimed more often than committed. A claim whose commit was lost (fenced,
 *   failed, killed) may have written items that the next claim then finds at the target and
 *   records as skipped: such a pass may have moved items without saying so. A batch retried after
 *   a commit that landed (transient item failures) is not counted.
 */
import type { Queryable } from '../types.ts';

export async function deltaPassChanges(db: Queryable, campaignId: string, firstBatchNo: number): Promise<{ moved: number; lostClaims: number }> {
  const { rows } = await db.query<{ moved: number; lost: number }>(
    `SELECT (SELECT count(*) FROM rewrap_campaign_items
              WHERE campaign_id = $1 AND batch_no >= $2 AND outcome = 'rewrapped' AND prior_outcome IS NULL)::int AS moved,
            (SELECT count(*) FROM rewrap_batches WHERE campaign_id = $1 AND batch_no >= $2 AND attempts > commits)::int AS lost`,
    [campaignId, firstBatchNo],
  );
  return { moved: rows[0]!.moved, lostClaims: rows[0]!.lost };
}
