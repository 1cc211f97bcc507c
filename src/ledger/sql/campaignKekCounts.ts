import type { Queryable } from '../types.ts';

/** One KEK seen by a campaign: items moved away from it, and items still under it (of them, failed). */
export interface KekCountRow {
  kekId: string | null;
  kekVersion: string | null;
  /** Rewrapped away from this KEK by the campaign (rewrap_campaign_items.from_*). */
  moved: number;
  /** The campaign's items not rewrapped whose inventory row says this KEK (null: no KEK recorded). */
  under: number;
  /** Of `under`, the failed ones (a failed item with no inventory row counts under a null KEK). */
  failed: number;
}

/**
 * Per-KEK counts of one campaign (key maps: status, API, reports). Items not processed yet are
 * attributed to no KEK (a planned item's KEK is known only once it is read): they are the
 * campaign's `remaining` in campaignProgress.
 */
export async function campaignKekCounts(db: Queryable, campaignId: string): Promise<KekCountRow[]> {
  const { rows } = await db.query<{ kek_id: string | null; kek_version: string | null; moved: string; under: string; failed: string }>(
    `SELECT kek_id, kek_version, sum(moved) AS moved, sum(under) AS under, sum(failed) AS failed FROM (
       SELECT from_kek AS kek_id, from_version AS kek_version, count(*) AS moved, 0 AS under, 0 AS failed
         FROM rewrap_campaign_items WHERE campaign_id = $1 AND outcome = 'rewrapped'
        GROUP BY 1, 2
       UNION ALL
       SELECT v.kek_id, coalesce(v.kek_version, v.material_id), 0, count(*), count(*) FILTER (WHERE ci.outcome = 'failed')
         FROM rewrap_campaign_items ci
         LEFT JOIN rewrap_inventory v ON v.store_id = ci.store_id AND v.item_key = ci.item_key
        WHERE ci.campaign_id = $1 AND ci.outcome IN ('skipped', 'failed') AND (v.item_key IS NOT NULL OR ci.outcome = 'failed')
        GROUP BY 1, 2
       UNION ALL
       -- Batch form: moves from the batches' from_keks; what is still under a KEK from the exceptions.
       SELECT (k.key::jsonb)->>0, coalesce((k.key::jsonb)->>1, (k.key::jsonb)->>2), sum(k.value::int), 0, 0
         FROM rewrap_batches b CROSS JOIN LATERAL jsonb_each_text(b.from_keks) k
        WHERE b.campaign_id = $1 AND b.from_keks IS NOT NULL
        GROUP BY 1, 2
       UNION ALL
       SELECT e.kek_id, coalesce(e.kek_version, e.material_id), 0, count(*), count(*) FILTER (WHERE e.outcome = 'failed')
         FROM rewrap_batch_exceptions e
        WHERE e.campaign_id = $1 AND (e.kek_id IS NOT NULL OR e.outcome = 'failed')
        GROUP BY 1, 2) k
      GROUP BY 1, 2 ORDER BY 1 NULLS FIRST, 2 NULLS FIRST`,
    [campaignId],
  );
  return rows.map((r) => ({ kekId: r.kek_id, kekVersion: r.kek_version, moved: Number(r.moved), under: Number(r.under), failed: Number(r.failed) }));
}
