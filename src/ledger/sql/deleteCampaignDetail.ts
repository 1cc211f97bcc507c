/**
 * One bounded step of `rewrap ledger prune` (at most `limit` rows per statement, each statement
 * its own transaction): a prune of a campaign with a billion items never holds one giant
 * transaction, and can stop and resume anywhere (every step is idempotent).
 *   items       rewrap_campaign_items rows that are rewrapped or skipped, except `keep`
 *               (keptMovedItems). Failed rows and rows without an outcome are never deleted: the
 *               retirement gate counts them (invariant 7). Walked in key order from `after`, so a
 *               step never rescans what earlier steps deleted; `next` is where the next step starts
 *               (null: done).
 *   batches     rewrap_batches of the campaign (what a batch held is in its items' rows).
 *   progress    rewrap_progress (per-second done counts, used only while a campaign runs).
 *   noncurrent  rewrap_noncurrent_versions the sweep deleted (gone from the bucket); exposed,
 *               locked and kept versions stay.
 */
import type { Queryable } from '../types.ts';
import type { ItemKey } from './keptMovedItems.ts';

export type DetailTable = 'batches' | 'progress' | 'noncurrent';

export async function deleteCampaignItemsStep(
  db: Queryable,
  campaignId: string,
  keep: ItemKey[],
  after: ItemKey | null,
  limit: number,
): Promise<{ deleted: number; next: ItemKey | null }> {
  const { rows } = await db.query<{ deleted: string; last_store: string | null; last_key: string | null; scanned: string }>(
    `WITH scan AS (
       SELECT store_id, item_key, outcome FROM rewrap_campaign_items
        WHERE campaign_id = $1 AND ($2::text IS NULL OR (store_id, item_key) > ($2::text, $3::text))
        ORDER BY store_id, item_key LIMIT $4),
     del AS (
       DELETE FROM rewrap_campaign_items ci USING scan s
        WHERE ci.campaign_id = $1 AND ci.store_id = s.store_id AND ci.item_key = s.item_key
          AND ci.outcome IN ('rewrapped', 'skipped')
          AND (ci.store_id, ci.item_key) NOT IN (SELECT k.s, k.k FROM unnest($5::text[], $6::text[]) AS k(s, k))
       RETURNING 1),
     last AS (SELECT store_id, item_key FROM scan ORDER BY store_id DESC, item_key DESC LIMIT 1)
     SELECT (SELECT count(*) FROM del) AS deleted, (SELECT count(*) FROM scan) AS scanned,
            (SELECT store_id FROM last) AS last_store, (SELECT item_key FROM last) AS last_key`,
    [campaignId, after?.storeId ?? null, after?.itemKey ?? null, limit, keep.map((k) => k.storeId), keep.map((k) => k.itemKey)],
  );
  const r = rows[0]!;
  const next = Number(r.scanned) < limit || r.last_store === null ? null : { storeId: r.last_store, itemKey: r.last_key! };
  return { deleted: Number(r.deleted), next };
}

const DETAIL_WHERE: Record<DetailTable, { table: string; where: string }> = {
  batches: { table: 'rewrap_batches', where: 'campaign_id = $1' },
  progress: { table: 'rewrap_progress', where: 'campaign_id = $1' },
  noncurrent: { table: 'rewrap_noncurrent_versions', where: `campaign_id = $1 AND state = 'deleted'` },
};

/** Deletes up to `limit` rows of one detail table of the campaign; returns how many (0: done). */
export async function deleteCampaignDetailStep(db: Queryable, campaignId: string, what: DetailTable, limit: number): Promise<number> {
  const { table, where } = DETAIL_WHERE[what];
  const { rowCount } = await db.query(`DELETE FROM ${table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM ${table} WHERE ${where} LIMIT $2))`, [campaignId, limit]);
  return rowCount ?? 0;
}

/**
 * Deletes up to `limit` shared-dedupe rows (rewrap_dek_rewraps) of terminal campaigns, whatever
 * their age: nothing rewraps for a completed or cancelled campaign again, so they are only cost.
 */
export async function deleteTerminalDekRewrapsStep(db: Queryable, limit: number): Promise<number> {
  const { rowCount } = await db.query(
    `DELETE FROM rewrap_dek_rewraps WHERE ctid = ANY(ARRAY(
       SELECT d.ctid FROM rewrap_dek_rewraps d JOIN rewrap_campaigns c ON c.id = d.campaign_id
        WHERE c.state IN ('completed', 'cancelled') LIMIT $1))`,
    [limit],
  );
  return rowCount ?? 0;
}
