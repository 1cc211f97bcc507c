import type { CampaignSummary, Queryable } from '../types.ts';

/**
 * Records what `rewrap ledger prune` keeps of a campaign, before it deletes anything: where the
 * archive is (verified), the outcomes and the exposure totals computed from the full detail. A
 * summary already there is kept (the first prune saw the whole campaign; a later one sees only
 * what it left).
 */
export async function saveCampaignSummary(db: Queryable, s: Omit<CampaignSummary, 'prunedAt' | 'rowsDeleted'>): Promise<void> {
  await db.query(
    `INSERT INTO rewrap_campaign_summaries (campaign_id, archive, archive_bytes, archive_etag, outcomes, exposure)
     VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb)
     ON CONFLICT (campaign_id) DO NOTHING`,
    [s.campaignId, s.archive?.location ?? null, s.archive?.bytes ?? null, s.archive?.etag ?? null, JSON.stringify(s.outcomes), JSON.stringify(s.exposure)],
  );
}

/** Adds rows a prune step deleted to the campaign's summary, and moves pruned_at to now. */
export async function addPrunedRows(db: Queryable, campaignId: string, rows: number): Promise<void> {
  await db.query(`UPDATE rewrap_campaign_summaries SET rows_deleted = rows_deleted + $2, pruned_at = now() WHERE campaign_id = $1`, [campaignId, rows]);
}
