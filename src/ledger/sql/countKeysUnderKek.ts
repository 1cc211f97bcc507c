import type { Queryable } from '../types.ts';
import { KMS_MATERIAL_ID_PATTERN, mayBeUnderSql } from '../../core/kms-material.ts';

/**
 * Of `keys` in `storeId`, how many may be under `kek`: the inventory says so, or the inventory
 * does not know the key (no campaign has seen it yet, so it may be under any KEK).
 * `version` matches a local keyring version or a KMS key material id; for a material id, a key
 * seen under the KMS key with no material recorded may be under it too (kms-material.ts).
 */
export async function countKeysUnderKek(db: Queryable, storeId: string, keys: string[], kek: { id: string; version?: string }): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM unnest($2::text[]) AS k(key)
       LEFT JOIN rewrap_inventory v ON v.store_id = $1 AND v.item_key = k.key
      WHERE v.item_key IS NULL OR ${mayBeUnderSql('$3', '$4', '$5')}`,
    [storeId, keys, kek.id, kek.version ?? null, KMS_MATERIAL_ID_PATTERN],
  );
  return rows[0]!.n;
}
