import type { CampaignSummary, Queryable } from '../types.ts';

/** What `rewrap ledger prune` kept of a pruned campaign; undefined when it was never pruned. */
export async function campaignSummary(db: Queryable, campaignId: string): Promise<CampaignSummary | undefined> {
  const { rows } = await db.query(
    `SELECT campaign_id, pruned_at, archive, archive_bytes, archive_etag, outcomes, exposure, rows_deleted
       FROM rewrap_campaign_summaries WHERE campaign_id = $1`,
    [campaignId],
  );
  const r = rows[0];
  if (!r) return undefined;
  return {
    campaignId: r.campaign_id,
    prunedAt: r.pruned_at,
    archive: r.archive === null ? null : { location: r.archive, bytes: Number(r.archive_bytes), ...(r.archive_etag !== null ? { etag: r.archive_etag } : {}) },
    outcomes: r.outcomes,
    exposure: r.exposure,
    rowsDeleted: Number(r.rows_deleted),
  };
}
