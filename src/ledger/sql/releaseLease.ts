import { validateLease } from '../lease-guard.ts';
import type { Queryable } from '../types.ts';

/** Gives the lease back (e.g. on shutdown) so another worker can claim the batch at once. */
export async function releaseLease(db: Queryable, req: { campaignId: string; batchNo: number; owner: string }): Promise<boolean> {
  validateLease('releaseLease', req);
  const { rowCount } = await db.query(
    `UPDATE rewrap_batches SET lease_owner = NULL, lease_until = NULL
      WHERE campaign_id = $1 AND batch_no = $2 AND lease_owner = $3 AND state <> 'done'`,
    [req.campaignId, req.batchNo, req.owner],
  );
  return rowCount === 1;
}
