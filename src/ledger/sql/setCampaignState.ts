/**
 * Compare-and-set of a campaign's state. Leaving 'cancelled' or 'completed' is refused: the overlap
 * check of createCampaign relies on terminal campaigns staying terminal.
 * Cancelling (or pausing) makes every lease of the campaign unrenewable, because renewLease and
 * claimBatch read the state under a share lock of the campaign row.
 */
import { CAMPAIGN_STATES, TERMINAL_STATES, type CampaignState, type Queryable } from '../types.ts';

export async function setCampaignState(
  db: Queryable,
  campaignId: string,
  from: CampaignState[],
  to: CampaignState,
  reason?: string,
): Promise<boolean> {
  if (!CAMPAIGN_STATES.includes(to)) throw new Error(`setCampaignState(${campaignId}): unknown target state "${to}"; expected one of ${CAMPAIGN_STATES.join(', ')}`);
  const terminal = from.filter((s) => TERMINAL_STATES.includes(s));
  if (terminal.length > 0) throw new Error(`setCampaignState(${campaignId}): a campaign never leaves state ${terminal.join('/')}`);
  const { rowCount } = await db.query(
    `UPDATE rewrap_campaigns
        SET state = $3,
            pause_reason = CASE WHEN $3 = 'paused' THEN $4 ELSE NULL END,
            started_at = CASE WHEN $3 = 'running' THEN coalesce(started_at, now()) ELSE started_at END,
            finished_at = CASE WHEN $3 IN ('cancelled', 'completed') THEN now() ELSE finished_at END,
            updated_at = now()
      WHERE id = $1 AND state = ANY($2::text[])`,
    [campaignId, from, to, reason ?? null],
  );
  return rowCount === 1;
}
