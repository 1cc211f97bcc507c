/**
 * Batch ledger form: which of `keys` (ids a delta pass's batch read from its range) the campaign
 * already recorded an exception for (failed, skipped with a reason). They are left out, as a
 * per-item campaign's delta pass leaves failed items alone: each item is counted once.
 */
import type { Queryable } from '../types.ts';

export async function exceptionsAmong(db: Queryable, campaignId: string, storeId: string, keys: readonly string[]): Promise<Set<string>> {
  if (keys.length === 0) return new Set();
  const { rows } = await db.query<{ item_key: string }>(
    'SELECT item_key FROM rewrap_batch_exceptions WHERE campaign_id = $1 AND store_id = $2 AND item_key = ANY($3::text[])',
    [campaignId, storeId, keys],
  );
  return new Set(rows.map((r) => r.item_key));
}
