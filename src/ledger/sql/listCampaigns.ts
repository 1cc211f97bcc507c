import { CAMPAIGN_COLUMNS, toCampaign } from '../campaign-row.ts';
import type { Campaign, CampaignState, Queryable } from '../types.ts';

/** Campaigns, highest priority first, then oldest first; optionally only those in `states`. */
export async function listCampaigns(db: Queryable, filter: { states?: CampaignState[] } = {}): Promise<Campaign[]> {
  const { rows } = await db.query(
    `SELECT ${CAMPAIGN_COLUMNS} FROM rewrap_campaigns
      WHERE $1::text[] IS NULL OR state = ANY($1::text[])
      ORDER BY priority DESC, created_at, id`,
    [filter.states ?? null],
  );
  return rows.map(toCampaign);
}
