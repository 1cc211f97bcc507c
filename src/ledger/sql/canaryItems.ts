/** The first `limit` planned items of a campaign, in plan order: the canary sample. */
import type { Queryable } from '../types.ts';

export async function canaryItems(db: Queryable, campaignId: string, limit: number): Promise<{ storeId: string; itemKey: string }[]> {
  const { rows } = await db.query<{ store_id: string; item_key: string }>(
    `SELECT store_id, item_key FROM rewrap_campaign_items WHERE campaign_id = $1 ORDER BY batch_no, item_key LIMIT $2`,
    [campaignId, limit],
  );
  return rows.map((r) => ({ storeId: r.store_id, itemKey: r.item_key }));
}
