import type { Queryable } from '../types.ts';

/** Items a campaign rewrapped, per minute of done_at (UTC, oldest first). */
export async function itemsMovedPerMinute(db: Queryable, campaignId: string): Promise<{ minute: Date; items: number }[]> {
  const { rows } = await db.query<{ minute: Date; items: string }>(
    `SELECT date_trunc('minute', done_at) AS minute, count(*) AS items FROM rewrap_campaign_items
      WHERE campaign_id = $1 AND outcome = 'rewrapped' GROUP BY 1 ORDER BY 1`,
    [campaignId],
  );
  return rows.map((r) => ({ minute: r.minute, items: Number(r.items) }));
}
