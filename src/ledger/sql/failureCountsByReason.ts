import type { Queryable, ReasonCount } from '../types.ts';

/** Failed items per reason code, most frequent first. */
export async function failureCountsByReason(db: Queryable, campaignId: string): Promise<ReasonCount[]> {
  const { rows } = await db.query<{ reason: string; items: string }>(
    `SELECT reason, items FROM rewrap_campaign_failure_reasons WHERE campaign_id = $1 AND items > 0 ORDER BY items DESC, reason`,
    [campaignId],
  );
  return rows.map((r) => ({ reason: r.reason, items: Number(r.items) }));
}
