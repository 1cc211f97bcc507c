import type { Queryable } from '../types.ts';

export interface ItemKey {
  storeId: string;
  itemKey: string;
}

/**
 * The rewrapped items of a campaign that `rewrap ledger prune` keeps, so the KEK retirement gate
 * is exactly as strict after a prune as before (src/retirement/kek-retirement.ts):
 *   - the newest rewrapped item per store: kekUsage's lastMovedAt (the grace period) is unchanged;
 *   - up to `sample` more, the same ones on every call (ordered by a hash of the key, not random):
 *     sampleMovedItems still finds moved items to re-read and verify, and a second prune keeps
 *     what the first one kept.
 * Failed and never-finished items are not pruned at all (they block retirement, invariant 7).
 */
export async function keptMovedItems(db: Queryable, campaignId: string, sample: number): Promise<ItemKey[]> {
  const { rows } = await db.query<{ store_id: string; item_key: string }>(
    `(SELECT DISTINCT ON (store_id) store_id, item_key FROM rewrap_campaign_items
       WHERE campaign_id = $1 AND outcome = 'rewrapped'
       ORDER BY store_id, done_at DESC NULLS LAST, item_key)
     UNION
     (SELECT store_id, item_key FROM rewrap_campaign_items
       WHERE campaign_id = $1 AND outcome = 'rewrapped'
       ORDER BY md5(store_id || E'\\n' || item_key), store_id, item_key LIMIT $2)`,
    [campaignId, sample],
  );
  return rows.map((r) => ({ storeId: r.store_id, itemKey: r.item_key }));
}
