import type { Queryable } from '../types.ts';

/** One second of a campaign's burn-down: what its commits took off the backlog then. */
export interface ProgressSecond {
  /** Unix seconds. */
  t: number;
  /** Items that reached an outcome in [t, t+1) (rewrap_progress). */
  items: number;
  /**
   * Batch form: how much the batches done in that second changed `planned` (the rows their
   * commits counted less what the plan counted in their ranges; commitBatchRange corrects
   * planned at a range's last commit, design decision 2). 0 for per-item campaigns.
   */
  plannedCorrection: number;
}

/**
 * Per-second progress of a campaign over the last `windowSeconds`, oldest first, and the
 * ledger's now (undefined when nothing is in the window). The backlog fell by `items - plannedCorrection` in a second: a range that read
 * fewer rows than planned takes its unread rows off the backlog with its planned count, not as
 * done items, and a burn-down from the done items alone would start below what was planned.
 * A batch's correction is put at the second it was done (in one transaction with its last
 * progress row): exact for a batch committed once, and a batch committed in parts changes
 * planned before its last commit only when it read more rows than planned.
 */
export async function campaignProgressPerSecond(db: Queryable, campaignId: string, windowSeconds: number): Promise<{ now: number | undefined; seconds: ProgressSecond[] }> {
  const { rows } = await db.query<{ t: string; items: string; correction: string; now: number }>(
    `SELECT t, sum(items) AS items, sum(correction) AS correction, extract(epoch FROM now())::float8 AS now FROM (
       SELECT extract(epoch FROM at_second)::bigint AS t, items::bigint AS items, 0::bigint AS correction
         FROM rewrap_progress
        WHERE campaign_id = $1 AND at_second > now() - $2::float8 * interval '1 second'
       UNION ALL
       SELECT extract(epoch FROM date_trunc('second', b.done_at))::bigint, 0, sum(b.rewrapped + b.skipped + b.failed - b.item_count)
         FROM rewrap_batches b JOIN rewrap_campaigns c ON c.id = b.campaign_id AND c.ledger_form = 'batches'
        WHERE b.campaign_id = $1 AND b.state = 'done'
          AND date_trunc('second', b.done_at) > now() - $2::float8 * interval '1 second'
        GROUP BY 1) s
      GROUP BY t ORDER BY t`,
    [campaignId, windowSeconds],
  );
  return { now: rows.length ? Number(rows[0]!.now) : undefined, seconds: rows.map((r) => ({ t: Number(r.t), items: Number(r.items), plannedCorrection: Number(r.correction) })) };
}
