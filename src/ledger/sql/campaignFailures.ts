import type { FailedItem, Queryable } from '../types.ts';

/** Failed items of a campaign in (store, key) order, a page at a time (keyset: pass the last item as `after`). */
export async function campaignFailures(
  db: Queryable,
  campaignId: string,
  page: { limit: number; after?: { storeId: string; itemKey: string } },
): Promise<FailedItem[]> {
  const { rows } = await db.query(
    `SELECT * FROM (
       SELECT store_id, item_key, reason, detail, from_kek, from_version, from_material, done_at
         FROM rewrap_campaign_items WHERE campaign_id = $1 AND outcome = 'failed'
       UNION ALL
       -- Batch form: its failed items are exceptions.
       SELECT store_id, item_key, reason, detail, from_kek, from_version, from_material, at
         FROM rewrap_batch_exceptions WHERE campaign_id = $1 AND outcome = 'failed') f
      WHERE ($2::text IS NULL OR (store_id, item_key) > ($2::text, $3::text))
      ORDER BY store_id, item_key LIMIT $4`,
    [campaignId, page.after?.storeId ?? null, page.after?.itemKey ?? null, page.limit],
  );
  return rows.map((r) => ({
    storeId: r.store_id,
    itemKey: r.item_key,
    reason: r.reason,
    detail: r.detail,
    from: r.from_kek === null ? null : { id: r.from_kek, version: r.from_version ?? undefined, materialId: r.from_material ?? undefined },
    doneAt: r.done_at,
  }));
}
