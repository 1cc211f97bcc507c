import type { InventoryCount, Queryable } from '../types.ts';

/** Items per (store, KEK id, version, KMS material) as last observed: what `kek retire` has left to move. */
export async function inventoryByKek(db: Queryable, storeId?: string): Promise<InventoryCount[]> {
  const { rows } = await db.query(
    `SELECT store_id, kek_id, kek_version, material_id, count(*) AS items
       FROM rewrap_inventory WHERE $1::text IS NULL OR store_id = $1
      GROUP BY store_id, kek_id, kek_version, material_id
      ORDER BY store_id, kek_id, kek_version NULLS FIRST, material_id NULLS FIRST`,
    [storeId ?? null],
  );
  return rows.map((r) => ({ storeId: r.store_id, kekId: r.kek_id, kekVersion: r.kek_version, materialId: r.material_id, items: Number(r.items) }));
}
