/** The first `limit` planned items of a campaign, in plan order: the canary sample. */
import type { Queryable } from '../types.ts';

export async function canaryItems(db: Queryable, campaignId: string, limit: number): Promise<{ storeId: string; itemKey: string }[]> {
  const { rows } = await db.query<{ store_id: string; item_key: string }>(
    `SELECT store_id, item_key FROM rewrap_campaign_items WHERE campaign_id = $1 ORDER BY batch_no, item_key LIMIT $2`,
    [campaignId, limit],
  );
  return rows.map((r) => ({ storeId: r.store_id, itemKey: r.item_key }));
}

/**
 * Batch ledger form: the plan's first ranges, in plan order, until they hold `items` planned rows
 * (the canary reads its sample from them: src/campaign/canary.ts).
 */
export async function canaryRanges(db: Queryable, campaignId: string, items: number): Promise<{ batchNo: number; storeId: string; lo: string | null; hi: string }[]> {
  const { rows } = await db.query<{ batch_no: number; store_id: string; lo: string | null; hi: string }>(
    `SELECT batch_no, store_id, lo, hi FROM (
       SELECT batch_no, store_id, lo, hi, sum(item_count) OVER (ORDER BY batch_no) - item_count AS before
         FROM rewrap_batches WHERE campaign_id = $1 AND NOT delta AND hi IS NOT NULL) b
      WHERE before < $2 ORDER BY batch_no`,
    [campaignId, items],
  );
  return rows.map((r) => ({ batchNo: r.batch_no, storeId: r.store_id, lo: r.lo, hi: r.hi }));
}
