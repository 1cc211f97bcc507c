import type { BatchRef, Queryable } from '../types.ts';

/** The lowest-numbered batches not yet handed to the queue. */
export async function nextPendingBatches(db: Queryable, campaignId: string, limit: number): Promise<BatchRef[]> {
  const { rows } = await db.query<BatchRef>(
    `SELECT batch_no AS "batchNo", store_id AS "storeId", item_count AS "itemCount"
       FROM rewrap_batches WHERE campaign_id = $1 AND state = 'pending'
      ORDER BY batch_no LIMIT $2`,
    [campaignId, limit],
  );
  return rows;
}
