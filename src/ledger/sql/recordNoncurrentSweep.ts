/**
 * One page of a campaign's noncurrent sweep: what it saw or did to each version, and where the
 * sweep is, in one transaction. Postcondition: a cursor is never saved ahead of the records of
 * the page it moves past, so a sweep resumed after a crash re-reads that page (each step of which
 * is safe to repeat: a version already deleted is gone from the listing, or its delete is a
 * no-op; invariant 2). `done` stamps noncurrent_swept_at; the scheduler completes the campaign
 * only after it.
 */
import type pg from 'pg';
import { jsonParam } from '../campaign-row.ts';
import { withTransaction } from '../transaction.ts';
import type { NoncurrentVersionRecord } from '../types.ts';

export async function recordNoncurrentSweep(pool: pg.Pool, campaignId: string, records: NoncurrentVersionRecord[], cursor: unknown, done: boolean): Promise<void> {
  const col = (f: (r: NoncurrentVersionRecord) => string | null) => records.map(f);
  await withTransaction(pool, async (client) => {
    if (records.length > 0) {
      await client.query(
        `INSERT INTO rewrap_noncurrent_versions (campaign_id, store_id, item_key, version_id, kek_id, kek_version, state, reason)
         SELECT $1, r.* FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
                AS r(store_id, item_key, version_id, kek_id, kek_version, state, reason)
         ON CONFLICT (campaign_id, store_id, item_key, version_id) DO UPDATE
            SET kek_id = excluded.kek_id, kek_version = excluded.kek_version, state = excluded.state, reason = excluded.reason, at = now()`,
        [
          campaignId,
          col((r) => r.storeId),
          col((r) => r.itemKey),
          col((r) => r.versionId),
          col((r) => r.kekId),
          col((r) => r.kekVersion),
          col((r) => r.state),
          col((r) => r.reason),
        ],
      );
    }
    await client.query(
      `UPDATE rewrap_campaigns
          SET noncurrent_cursor = $2::jsonb, noncurrent_swept_at = CASE WHEN $3 THEN now() ELSE NULL END, updated_at = now()
        WHERE id = $1`,
      [campaignId, jsonParam(cursor), done],
    );
  });
}
