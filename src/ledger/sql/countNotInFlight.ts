import type { Queryable } from '../types.ts';

/** Of these batches, how many the ledger no longer counts in flight (done, or back to pending). */
export async function countNotInFlight(db: Queryable, campaignId: string, batchNos: number[]): Promise<number> {
  if (batchNos.length === 0) return 0;
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM rewrap_batches WHERE campaign_id = $1 AND batch_no = ANY($2::int[]) AND state <> 'enqueued'`,
    [campaignId, batchNos],
  );
  return rows[0].n;
}
