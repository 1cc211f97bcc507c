import type { Queryable } from '../types.ts';

/** Items a campaign rewrapped, per minute of done_at (UTC, oldest first; batch form: per batch). */
export async function itemsMovedPerMinute(db: Queryable, campaignId: string): Promise<{ minute: Date; items: number }[]> {
  const { rows } = await db.query<{ minute: Date; items: string }>(
    `SELECT minute, sum(items) AS items FROM (
       SELECT date_trunc('minute', done_at) AS minute, count(*) AS items FROM rewrap_campaign_items
        WHERE campaign_id = $1 AND outcome = 'rewrapped' GROUP BY 1
       UNION ALL
       -- Batch form: a batch's moves, at the minute it was done (or first moved, while it is not).
       SELECT date_trunc('minute', coalesce(done_at, moved_at)), sum(rewrapped) FROM rewrap_batches
        WHERE campaign_id = $1 AND hi IS NOT NULL AND rewrapped > 0 GROUP BY 1) m
      GROUP BY 1 ORDER BY 1`,
    [campaignId],
  );
  return rows.map((r) => ({ minute: r.minute, items: Number(r.items) }));
}
