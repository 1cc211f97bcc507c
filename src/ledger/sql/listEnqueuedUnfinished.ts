import type { EnqueuedBatch, Queryable } from '../types.ts';

/**
 * Enqueued batches that are not done, for the reconciler: it re-adds those missing from Redis.
 * `enqueuedBefore` leaves out batches enqueued too recently to be judged.
 */
export async function listEnqueuedUnfinished(
  db: Queryable,
  campaignId: string,
  options: { limit?: number; enqueuedBefore?: Date } = {},
): Promise<EnqueuedBatch[]> {
  const { rows } = await db.query<EnqueuedBatch>(
    `SELECT batch_no AS "batchNo", store_id AS "storeId", item_count AS "itemCount", attempts,
            enqueued_at AS "enqueuedAt", lease_owner AS "leaseOwner", lease_until AS "leaseUntil"
       FROM rewrap_batches
      WHERE campaign_id = $1 AND state = 'enqueued' AND ($2::timestamptz IS NULL OR enqueued_at < $2)
      ORDER BY batch_no LIMIT $3`,
    [campaignId, options.enqueuedBefore ?? null, options.limit ?? 10_000],
  );
  return rows;
}
