import type { KekRecord, Queryable } from '../types.ts';

export interface MovedItem {
  campaignId: string;
  storeId: string;
  itemKey: string;
  to: KekRecord;
  doneAt: Date;
}

/** Up to `limit` items the campaigns rewrapped, chosen at random (a verification sample). */
export async function sampleMovedItems(db: Queryable, campaignIds: string[], limit: number): Promise<MovedItem[]> {
  const { rows } = await db.query(
    `SELECT campaign_id, store_id, item_key, to_kek, to_version, to_material, done_at FROM rewrap_campaign_items
      WHERE campaign_id = ANY($1::text[]) AND outcome = 'rewrapped' ORDER BY random() LIMIT $2`,
    [campaignIds, limit],
  );
  return rows.map((r) => ({
    campaignId: r.campaign_id,
    storeId: r.store_id,
    itemKey: r.item_key,
    to: { id: r.to_kek, version: r.to_version ?? undefined, materialId: r.to_material ?? undefined },
    doneAt: r.done_at,
  }));
}
