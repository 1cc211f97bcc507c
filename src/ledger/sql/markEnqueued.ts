import type { Queryable } from '../types.ts';

/**
 * Records that these batches were added to the queue (call after the queue accepted them: a crash
 * in between leaves them pending and they are enqueued again, which the lease makes harmless).
 * Returns how many moved from 'pending' to 'enqueued'.
 */
export async function markEnqueued(db: Queryable, campaignId: string, batchNos: number[]): Promise<number> {
  const { rowCount } = await db.query(
    `UPDATE rewrap_batches SET state = 'enqueued', enqueued_at = now()
      WHERE campaign_id = $1 AND batch_no = ANY($2::int[]) AND state = 'pending'`,
    [campaignId, batchNos],
  );
  return rowCount ?? 0;
}
