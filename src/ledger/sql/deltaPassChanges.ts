/**
 * What a delta pass changed, from the batches numbered `firstBatchNo` or later (every item the
 * pass planned or re-queued lands in one, see beginDeltaPass):
 * - moved: items rewrapped there (batch form: the batches' rewrapped counts). An item this campaign rewrapped before and found at the target
 *   again keeps 'rewrapped' with its prior outcome (commitBatch): it did not move.
 * - suspectBatches: batches that may have moved items without saying so: claimed more often than
 *   committed (a claim whose commit was lost, fenced or failed may have written items the next
 *   claim then found at the target), or claimed more than once with an item found already at the
 *   target (a write whose reply was lost is retried as transient, and the next claim finds it
 *   done). A batch retried after a landed commit with no such item is not counted.
 */
import type { Queryable } from '../types.ts';

export async function deltaPassChanges(db: Queryable, campaignId: string, firstBatchNo: number): Promise<{ moved: number; suspectBatches: number }> {
  const { rows } = await db.query<{ moved: number; suspect: number }>(
    `SELECT ((SELECT count(*) FROM rewrap_campaign_items
              WHERE campaign_id = $1 AND batch_no >= $2 AND outcome = 'rewrapped' AND prior_outcome IS NULL)
             -- Batch form: a delta batch holds only rows still under the source KEK, so each rewrap is a move.
             + (SELECT coalesce(sum(rewrapped), 0) FROM rewrap_batches WHERE campaign_id = $1 AND batch_no >= $2 AND hi IS NOT NULL))::int AS moved,
            (SELECT count(*) FROM rewrap_batches b
              WHERE b.campaign_id = $1 AND b.batch_no >= $2
                AND (b.attempts > b.commits
                     OR (b.attempts > 1 AND EXISTS (
                           SELECT 1 FROM rewrap_campaign_items ci
                            WHERE ci.campaign_id = b.campaign_id AND ci.batch_no = b.batch_no
                              AND ci.outcome = 'skipped' AND ci.reason = 'already-at-target'))
                     OR (b.attempts > 1 AND b.hi IS NOT NULL AND EXISTS (
                           SELECT 1 FROM rewrap_batch_exceptions e
                            WHERE e.campaign_id = b.campaign_id AND e.batch_no = b.batch_no AND e.reason = 'already-at-target'))))::int AS suspect`,
    [campaignId, firstBatchNo],
  );
  return { moved: rows[0]!.moved, suspectBatches: rows[0]!.suspect };
}
