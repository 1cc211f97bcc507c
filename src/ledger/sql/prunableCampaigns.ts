import { CAMPAIGN_COLUMNS, toCampaign } from '../campaign-row.ts';
import type { Campaign, Queryable } from '../types.ts';

/**
 * Campaigns whose detail `rewrap ledger prune` may delete: completed or cancelled, and finished
 * before `cutoff`. Terminal campaigns stay terminal (setCampaignState), so nothing can write to
 * their rows again. Oldest finished first. Both ledger forms: the caller skips the batch form
 * (its detail is per batch already) and says so.
 */
export async function prunableCampaigns(db: Queryable, cutoff: Date): Promise<Campaign[]> {
  const { rows } = await db.query(
    `SELECT ${CAMPAIGN_COLUMNS} FROM rewrap_campaigns
      WHERE state IN ('completed', 'cancelled') AND finished_at IS NOT NULL AND finished_at < $1
      ORDER BY finished_at, id`,
    [cutoff],
  );
  return rows.map(toCampaign);
}
