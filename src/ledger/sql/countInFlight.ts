import type { Queryable } from '../types.ts';

/** Batches handed to the queue and not done yet: the scheduler keeps this under its window. */
export async function countInFlight(db: Queryable, campaignId: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM rewrap_batches WHERE campaign_id = $1 AND state = 'enqueued'`,
    [campaignId],
  );
  return rows[0].n;
}
