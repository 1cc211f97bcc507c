/**
 * The instruction files a campaign's workers saw marked (`x-amz-crypto-instr-file`), by the key of
 * the item each belongs to: `<key>` -> the ETag of `<key>.instruction` as the item's last committed
 * attempt left it (commitBatch, migration 8). One primary-key lookup per key, one statement per
 * listing page (S3ListSource's delta pass).
 */
import type { Queryable } from '../types.ts';

export async function instructionFilesSeen(db: Queryable, campaignId: string, storeId: string, itemKeys: readonly string[]): Promise<Map<string, string>> {
  if (itemKeys.length === 0) return new Map();
  const { rows } = await db.query<{ item_key: string; etag: string }>(
    `SELECT ci.item_key, ci.envelope_file_etag AS etag
       FROM unnest($3::text[]) AS u(k)
       JOIN rewrap_campaign_items ci ON ci.campaign_id = $1 AND ci.store_id = $2 AND ci.item_key = u.k
      WHERE ci.envelope_file_etag IS NOT NULL`,
    [campaignId, storeId, itemKeys],
  );
  return new Map(rows.map((r) => [r.item_key, r.etag]));
}
