import type { Queryable } from '../types.ts';

/** Plan done, every batch done, and every planned item has an outcome. */
export async function isCampaignComplete(db: Queryable, campaignId: string): Promise<boolean> {
  const { rows } = await db.query<{ complete: boolean }>(
    `SELECT c.plan_done
            AND NOT EXISTS (SELECT 1 FROM rewrap_batches b WHERE b.campaign_id = c.id AND b.state <> 'done')
            AND k.rewrapped + k.skipped + k.failed = k.planned AS complete
       FROM rewrap_campaigns c JOIN rewrap_campaign_counters k ON k.campaign_id = c.id
      WHERE c.id = $1`,
    [campaignId],
  );
  return rows[0]?.complete ?? false;
}
