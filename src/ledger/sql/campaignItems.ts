import type { KekRecord, Queryable } from '../types.ts';

export interface CampaignItemRow {
  storeId: string;
  itemKey: string;
  /** null: planned, no outcome yet. */
  outcome: 'rewrapped' | 'skipped' | 'failed' | null;
  reason: string | null;
  detail: string | null;
  from: KekRecord | null;
  to: KekRecord | null;
  /** Which KEK the inventory last saw wrapping the item (by any campaign). */
  kekNow: KekRecord | null;
  /** When the inventory last recorded `kekNow`. */
  kekNowAt: Date | null;
  doneAt: Date | null;
  /**
   * The item's batch was claimed more than once, or more often than it committed: an earlier
   * claim may have written the item and lost the reply or the commit (deltaPassChanges).
   */
  batchRetried: boolean;
}

const kek = (id: string | null, version: string | null, material: string | null): KekRecord | null =>
  id === null ? null : { id, ...(version !== null ? { version } : {}), ...(material !== null ? { materialId: material } : {}) };

/** Every planned item of a campaign in (store, key) order, a page at a time (keyset: pass the last as `after`). */
export async function campaignItems(
  db: Queryable,
  campaignId: string,
  page: { limit: number; after?: { storeId: string; itemKey: string } },
): Promise<CampaignItemRow[]> {
  const { rows } = await db.query(
    `SELECT ci.store_id, ci.item_key, ci.outcome, ci.reason, ci.detail, ci.from_kek, ci.from_version, ci.from_material,
            ci.to_kek, ci.to_version, ci.to_material, ci.done_at, v.kek_id AS inv_kek, v.kek_version AS inv_version, v.material_id AS inv_material,
            v.updated_at AS inv_at, coalesce(b.attempts > 1 OR b.attempts > b.commits, false) AS batch_retried
       FROM rewrap_campaign_items ci
       LEFT JOIN rewrap_inventory v ON v.store_id = ci.store_id AND v.item_key = ci.item_key
       LEFT JOIN rewrap_batches b ON b.campaign_id = ci.campaign_id AND b.batch_no = ci.batch_no
      WHERE ci.campaign_id = $1 AND ($2::text IS NULL OR (ci.store_id, ci.item_key) > ($2::text, $3::text))
      ORDER BY ci.store_id, ci.item_key LIMIT $4`,
    [campaignId, page.after?.storeId ?? null, page.after?.itemKey ?? null, page.limit],
  );
  return rows.map((r) => ({
    storeId: r.store_id,
    itemKey: r.item_key,
    outcome: r.outcome,
    reason: r.reason,
    detail: r.detail,
    from: kek(r.from_kek, r.from_version, r.from_material),
    to: kek(r.to_kek, r.to_version, r.to_material),
    kekNow: kek(r.inv_kek, r.inv_version, r.inv_material),
    kekNowAt: r.inv_at,
    doneAt: r.done_at,
    batchRetried: r.batch_retried,
  }));
}
