/**
 * Noncurrent versions as the ledger last saw them. `noncurrentCounts`: one campaign's sweep, by
 * store, state and reason (status, API). `noncurrentInventory`: across campaigns, the latest
 * record of each version that is still there (exposed, locked, kept), by store and KEK: the
 * `version="noncurrent"` series of rewrap_inventory_items.
 */
import type { NoncurrentCount, NoncurrentState, Queryable } from '../types.ts';

export async function noncurrentCounts(db: Queryable, campaignId: string): Promise<NoncurrentCount[]> {
  const { rows } = await db.query(
    `SELECT store_id, state, reason, count(*) AS versions FROM rewrap_noncurrent_versions
      WHERE campaign_id = $1 GROUP BY store_id, state, reason ORDER BY store_id, state, reason NULLS FIRST`,
    [campaignId],
  );
  return rows.map((r) => ({ storeId: r.store_id, state: r.state as NoncurrentState, reason: r.reason, versions: Number(r.versions) }));
}

export interface NoncurrentInventoryCount {
  storeId: string;
  kekId: string;
  kekVersion: string | null;
  versions: number;
}

export async function noncurrentInventory(db: Queryable): Promise<NoncurrentInventoryCount[]> {
  const { rows } = await db.query(
    `SELECT store_id, coalesce(kek_id, '') AS kek_id, kek_version, count(*) AS versions
       FROM (SELECT DISTINCT ON (store_id, item_key, version_id) store_id, kek_id, kek_version, state
               FROM rewrap_noncurrent_versions ORDER BY store_id, item_key, version_id, at DESC) latest
      WHERE state <> 'deleted'
      GROUP BY store_id, coalesce(kek_id, ''), kek_version ORDER BY 1, 2, 3 NULLS FIRST`,
  );
  return rows.map((r) => ({ storeId: r.store_id, kekId: r.kek_id, kekVersion: r.kek_version, versions: Number(r.versions) }));
}
