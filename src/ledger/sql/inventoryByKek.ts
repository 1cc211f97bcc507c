import type { InventoryCount, Queryable } from '../types.ts';

/**
 * Batch-form campaigns over stores without a per-item inventory (commitBatchRange keeps one where
 * it exists): each campaign's batches say what wraps the items they read. A count of a KEK is
 * what one campaign left under it, less what later batch-form campaigns over the store moved away
 * from it, and nothing once a later one that drained it completed (its final delta pass read every
 * row still under it). Rows no campaign read are in no inventory, as in the per-item form.
 */
const BATCH_FORM_SQL = `
WITH entries AS (
  SELECT b.store_id, c.id AS campaign_id, c.created_at, (k.key::jsonb)->>0 AS kek_id, (k.key::jsonb)->>1 AS kek_version,
         (k.key::jsonb)->>2 AS material_id, sum(k.value::int) AS items
    FROM rewrap_batches b
    JOIN rewrap_campaigns c ON c.id = b.campaign_id AND c.ledger_form = 'batches'
    CROSS JOIN LATERAL jsonb_each_text(b.keks) k
   WHERE b.keks IS NOT NULL AND ($1::text IS NULL OR b.store_id = $1)
     AND NOT EXISTS (SELECT 1 FROM rewrap_inventory v WHERE v.store_id = b.store_id)
   GROUP BY 1, 2, 3, 4, 5, 6),
moved_away AS (
  SELECT b.store_id, c.created_at, (k.key::jsonb)->>0 AS kek_id, (k.key::jsonb)->>1 AS kek_version,
         (k.key::jsonb)->>2 AS material_id, sum(k.value::int) AS items
    FROM rewrap_batches b
    JOIN rewrap_campaigns c ON c.id = b.campaign_id AND c.ledger_form = 'batches'
    CROSS JOIN LATERAL jsonb_each_text(b.from_keks) k
   WHERE b.from_keks IS NOT NULL AND ($1::text IS NULL OR b.store_id = $1)
   GROUP BY 1, 2, 3, 4, 5)
SELECT e.store_id, e.kek_id, e.kek_version, e.material_id, sum(greatest(e.items - coalesce(m.items, 0), 0)) AS items
  FROM entries e
  LEFT JOIN LATERAL (
    SELECT sum(ma.items) AS items FROM moved_away ma
     WHERE ma.store_id = e.store_id AND ma.created_at > e.created_at AND ma.kek_id = e.kek_id
       AND ma.kek_version IS NOT DISTINCT FROM e.kek_version AND ma.material_id IS NOT DISTINCT FROM e.material_id) m ON true
 WHERE e.kek_id IS NOT NULL
   AND NOT EXISTS (
     SELECT 1 FROM rewrap_campaigns d
      WHERE d.ledger_form = 'batches' AND d.state = 'completed' AND d.created_at > e.created_at
        AND d.scopes @> jsonb_build_array(jsonb_build_object('storeId', e.store_id))
        AND d.spec->'from'->>'id' = e.kek_id
        AND (d.spec->'from'->>'version' IS NULL OR d.spec->'from'->>'version' IN (e.kek_version, e.material_id)))
 GROUP BY 1, 2, 3, 4
HAVING sum(greatest(e.items - coalesce(m.items, 0), 0)) > 0`;

/** Items per (store, KEK id, version, KMS material) as last observed: what `kek retire` has left to move. */
export async function inventoryByKek(db: Queryable, storeId?: string): Promise<InventoryCount[]> {
  const { rows } = await db.query(
    `SELECT store_id, kek_id, kek_version, material_id, sum(items) AS items FROM (
       SELECT store_id, kek_id, kek_version, material_id, count(*) AS items
         FROM rewrap_inventory WHERE $1::text IS NULL OR store_id = $1
        GROUP BY store_id, kek_id, kek_version, material_id
       UNION ALL
       (${BATCH_FORM_SQL})) i
      GROUP BY store_id, kek_id, kek_version, material_id
      ORDER BY store_id, kek_id, kek_version NULLS FIRST, material_id NULLS FIRST`,
    [storeId ?? null],
  );
  return rows.map((r) => ({ storeId: r.store_id, kekId: r.kek_id, kekVersion: r.kek_version, materialId: r.material_id, items: Number(r.items) }));
}
