import { CAMPAIGN_COLUMNS, toCampaign } from '../campaign-row.ts';
import type { Campaign, Queryable } from '../types.ts';

/** Campaigns whose source KEK is `kek` (any version of it when `version` is absent), newest first. */
export async function campaignsFromKek(db: Queryable, kek: { id: string; version?: string }): Promise<Campaign[]> {
  const { rows } = await db.query(
    `SELECT ${CAMPAIGN_COLUMNS} FROM rewrap_campaigns
      WHERE spec->'from'->>'id' = $1 AND ($2::text IS NULL OR spec->'from'->>'version' = $2)
      ORDER BY created_at DESC, id`,
    [kek.id, kek.version ?? null],
  );
  return rows.map(toCampaign);
}
