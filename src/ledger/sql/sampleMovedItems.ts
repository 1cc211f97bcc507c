import type { KekRecord, Queryable } from '../types.ts';
import { SAMPLE_ENTRIES_SQL } from '../batch-samples.ts';

export interface MovedItem {
  campaignId: string;
  storeId: string;
  itemKey: string;
  to: KekRecord;
  doneAt: Date;
}

/**
 * Up to `limit` items the campaigns rewrapped, chosen at random (a verification sample; a batch-form
 * campaign offers one item per KEK each batch moved items from). `from`:
 * only items moved away from that KEK (a key map campaign moves many; retiring one of them
 * samples its own items): its id, and its version or KMS material when it names one.
 */
export async function sampleMovedItems(db: Queryable, campaignIds: string[], limit: number, from?: { id: string; version?: string }): Promise<MovedItem[]> {
  const { rows } = await db.query(
    `SELECT * FROM (
       SELECT campaign_id, store_id, item_key, to_kek, to_version, to_material, done_at FROM rewrap_campaign_items
        WHERE campaign_id = ANY($1::text[]) AND outcome = 'rewrapped'
          AND ($3::text IS NULL OR from_kek = $3)
          AND ($4::text IS NULL OR from_version = $4 OR from_material = $4)
       UNION ALL
       -- Batch form: one item each batch rewrapped (its sample), as its commit recorded it.
       SELECT campaign_id, store_id, s->>'key', s->'to'->>'id', s->'to'->>'version', s->'to'->>'materialId', coalesce(done_at, moved_at)
         FROM rewrap_batches, ${SAMPLE_ENTRIES_SQL('sample')} AS s
        WHERE campaign_id = ANY($1::text[]) AND sample IS NOT NULL
          AND ($3::text IS NULL OR s->'from'->>'id' = $3)
          AND ($4::text IS NULL OR s->'from'->>'version' = $4 OR s->'from'->>'materialId' = $4)) m
      ORDER BY random() LIMIT $2`,
    [campaignIds, limit, from?.id ?? null, from?.version ?? null],
  );
  return rows.map((r) => ({
    campaignId: r.campaign_id,
    storeId: r.store_id,
    itemKey: r.item_key,
    to: { id: r.to_kek, version: r.to_version ?? undefined, materialId: r.to_material ?? undefined },
    doneAt: r.done_at,
  }));
}
