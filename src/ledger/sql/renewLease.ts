/**
 * Extends a lease, only while the campaign is 'running' and the lease is still ours (nobody claimed
 * the batch since). After cancel or pause it fails, and the worker stops writing.
 */
import type pg from 'pg';
import { withTransaction } from '../transaction.ts';
import { validateLease } from '../lease-guard.ts';
import type { CampaignState, LeaseRequest, RenewResult } from '../types.ts';

export async function renewLease(pool: pg.Pool, req: LeaseRequest): Promise<RenewResult> {
  validateLease('renewLease', req);
  return withTransaction(pool, async (client) => {
    // Batch row first, then the campaign row: the ledger's lock order.
    const { rows: batches } = await client.query<{ mine: boolean }>(
      `SELECT lease_owner = $3 AND state <> 'done' AS mine FROM rewrap_batches
        WHERE campaign_id = $1 AND batch_no = $2 FOR UPDATE`,
      [req.campaignId, req.batchNo, req.owner],
    );
    const { rows: campaigns } = await client.query<{ state: CampaignState }>('SELECT state FROM rewrap_campaigns WHERE id = $1 FOR SHARE', [req.campaignId]);
    const campaignState = campaigns[0]?.state;
    if (batches[0]?.mine !== true || campaignState !== 'running') return { ok: false, campaignState };
    const { rows } = await client.query<{ lease_until: Date }>(
      `UPDATE rewrap_batches SET lease_until = now() + $3::float8 * interval '1 millisecond'
        WHERE campaign_id = $1 AND batch_no = $2 RETURNING lease_until`,
      [req.campaignId, req.batchNo, req.leaseMs],
    );
    return { ok: true, campaignState, leaseUntil: rows[0].lease_until };
  });
}
