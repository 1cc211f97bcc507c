/**
 * Starts a delta pass: counts it, clears the cursor and reopens planning (plan_done = false), so
 * the campaign is not complete until replanItems saves planDone again. Returns the pass number
 * and the first batch number the pass can plan into (every item it plans or re-queues lands in a
 * batch from there on), or undefined when the campaign is terminal or its main plan is not done yet.
 */
import type { Queryable } from '../types.ts';

export async function beginDeltaPass(db: Queryable, campaignId: string): Promise<{ pass: number; firstBatchNo: number } | undefined> {
  const { rows } = await db.query<{ delta_passes: number; next_batch_no: number }>(
    `UPDATE rewrap_campaigns
        SET delta_passes = delta_passes + 1, plan_cursor = NULL, plan_done = false, updated_at = now()
      WHERE id = $1 AND plan_done AND state IN ('planning', 'running', 'paused')
      RETURNING delta_passes, next_batch_no`,
    [campaignId],
  );
  return rows[0] && { pass: rows[0].delta_passes, firstBatchNo: rows[0].next_batch_no };
}
