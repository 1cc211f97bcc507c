import { CAMPAIGN_COLUMNS, toCampaign } from '../campaign-row.ts';
import type { Campaign, Queryable } from '../types.ts';

export async function getCampaign(db: Queryable, campaignId: string): Promise<Campaign | undefined> {
  const { rows } = await db.query(`SELECT ${CAMPAIGN_COLUMNS} FROM rewrap_campaigns WHERE id = $1`, [campaignId]);
  return rows.length === 0 ? undefined : toCampaign(rows[0]);
}
