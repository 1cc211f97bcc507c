/** Backlog, rate and ETA of a campaign, from the counters and the per-second progress rows. */
import { CampaignNotFoundError } from '../ledger-errors.ts';
import type { BatchState, CampaignProgress, Queryable } from '../types.ts';

/** The done rate is averaged over this window (or since the campaign started, if later). */
const RATE_WINDOW_SECONDS = 60;

export async function campaignProgress(db: Queryable, campaignId: string): Promise<CampaignProgress> {
  const { rows } = await db.query(
    `SELECT c.state, c.plan_done, c.pause_reason, k.planned, k.rewrapped, k.skipped, k.failed,
            (SELECT coalesce(sum(p.items), 0) FROM rewrap_progress p
              WHERE p.campaign_id = c.id AND p.at_second > now() - $2::float8 * interval '1 second') AS recent,
            -- The window: 60 s, or the time since the campaign started (at least 1 s).
            greatest(1, least($2::float8, extract(epoch FROM now() - coalesce(c.started_at, c.created_at)))) AS window_s,
            (SELECT coalesce(jsonb_object_agg(state, n), '{}') FROM
               (SELECT state, count(*) AS n FROM rewrap_batches b WHERE b.campaign_id = c.id GROUP BY state) s) AS batches,
            -- Health: batches in Redis whose last attempt went back to be retried (at most the window).
            (SELECT count(*) FROM rewrap_batches b
              WHERE b.campaign_id = c.id AND b.state = 'enqueued' AND b.last_error IS NOT NULL) AS retrying,
            (SELECT mode() WITHIN GROUP (ORDER BY b.last_error) FROM rewrap_batches b
              WHERE b.campaign_id = c.id AND b.state = 'enqueued' AND b.last_error IS NOT NULL) AS retry_reason,
            (SELECT max(p.at_second) FROM rewrap_progress p WHERE p.campaign_id = c.id) AS last_done_at
       FROM rewrap_campaigns c JOIN rewrap_campaign_counters k ON k.campaign_id = c.id
      WHERE c.id = $1`,
    [campaignId, RATE_WINDOW_SECONDS],
  );
  if (rows.length === 0) throw new CampaignNotFoundError(campaignId, 'campaignProgress');
  const r = rows[0];
  const planned = Number(r.planned);
  const rewrapped = Number(r.rewrapped);
  const skipped = Number(r.skipped);
  const failed = Number(r.failed);
  const remaining = planned - rewrapped - skipped - failed;
  const doneRatePerSec = Number(r.recent) / Number(r.window_s);
  const batches: Record<BatchState, number> = { pending: 0, enqueued: 0, done: 0, ...r.batches };
  return {
    planned,
    rewrapped,
    skipped,
    failed,
    remaining,
    doneRatePerSec,
    etaSeconds: doneRatePerSec > 0 ? Math.ceil(remaining / doneRatePerSec) : null,
    state: r.state,
    planDone: r.plan_done,
    pauseReason: r.pause_reason,
    batches,
    health: {
      status: r.state === 'running' && Number(r.retrying) > 0 ? 'degraded' : 'ok',
      retryingBatches: Number(r.retrying),
      reason: r.retry_reason ?? null,
      lastDoneAt: r.last_done_at ? new Date(r.last_done_at).toISOString() : null,
    },
  };
}
