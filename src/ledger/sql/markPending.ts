import type { Queryable } from '../types.ts';

/** Puts enqueued batches back to 'pending' (e.g. the queue lost them). Done batches never go back. */
export async function markPending(db: Queryable, campaignId: string, batchNos: number[]): Promise<number> {
  const { rowCount } = await db.query(
    `UPDATE rewrap_batches SET state = 'pending', enqueued_at = NULL
      WHERE campaign_id = $1 AND batch_no = ANY($2::int[]) AND state = 'enqueued'`,
    [campaignId, batchNos],
  );
  return rowCount ?? 0;
}
