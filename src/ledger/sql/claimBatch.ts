/**
 * Takes the lease of a batch for `owner`, atomically: only if the campaign is 'running', the batch
 * is not done, and its lease is free, expired or already ours; attempts + 1.
 * Lock order (everywhere in the ledger): batch row, then items, counters, campaign row. The campaign
 * row is read FOR SHARE, so a concurrent cancel either happens before (we see it) or waits for us.
 */
import type pg from 'pg';
import { withTransaction } from '../transaction.ts';
import { CAMPAIGN_COLUMNS, toCampaign } from '../campaign-row.ts';
import { validateLease } from '../lease-guard.ts';
import type { ClaimResult, LeaseRequest } from '../types.ts';

export async function claimBatch(pool: pg.Pool, req: LeaseRequest): Promise<ClaimResult> {
  validateLease('claimBatch', req);
  return withTransaction(pool, async (client) => {
    const { rows: batches } = await client.query<{ state: string; lease_owner: string | null; lease_until: Date | null; live: boolean }>(
      `SELECT state, lease_owner, lease_until, coalesce(lease_until > now(), false) AS live
         FROM rewrap_batches WHERE campaign_id = $1 AND batch_no = $2 FOR UPDATE`,
      [req.campaignId, req.batchNo],
    );
    if (batches.length === 0) return { status: 'not-found' };
    const b = batches[0];
    if (b.state === 'done') return { status: 'done' };
    const { rows: campaigns } = await client.query(`SELECT ${CAMPAIGN_COLUMNS} FROM rewrap_campaigns WHERE id = $1 FOR SHARE`, [req.campaignId]);
    const campaign = toCampaign(campaigns[0]);
    if (campaign.state !== 'running') return { status: 'campaign-not-running', state: campaign.state };
    if (b.live && b.lease_owner !== req.owner) return { status: 'leased', leaseOwner: b.lease_owner!, leaseUntil: b.lease_until! };
    const { rows: claimed } = await client.query<{ store_id: string; attempts: number; lease_until: Date; lo: string | null; hi: string | null; delta: boolean }>(
      `UPDATE rewrap_batches
          SET lease_owner = $3, lease_until = now() + $4::float8 * interval '1 millisecond', attempts = attempts + 1
        WHERE campaign_id = $1 AND batch_no = $2
        RETURNING store_id, attempts, lease_until, lo, hi, delta`,
      [req.campaignId, req.batchNo, req.owner, req.leaseMs],
    );
    const c = claimed[0];
    if (campaign.ledgerForm === 'batches') {
      /* The range is read by the worker; items an earlier attempt recorded as exceptions are left out. */
      const { rows: excepted } = await client.query<{ item_key: string }>(
        'SELECT item_key FROM rewrap_batch_exceptions WHERE campaign_id = $1 AND batch_no = $2 ORDER BY item_key',
        [req.campaignId, req.batchNo],
      );
      const range = { lo: c.lo, hi: c.hi!, exclude: excepted.map((r) => r.item_key), delta: c.delta };
      return { status: 'claimed', batch: { batchNo: req.batchNo, storeId: c.store_id, items: [], attempts: c.attempts, leaseUntil: c.lease_until, range }, campaign };
    }
    const { rows: items } = await client.query<{ item_key: string }>(
      `SELECT item_key FROM rewrap_campaign_items
        WHERE campaign_id = $1 AND batch_no = $2 AND outcome IS NULL ORDER BY store_id, item_key`,
      [req.campaignId, req.batchNo],
    );
    return {
      status: 'claimed',
      batch: { batchNo: req.batchNo, storeId: c.store_id, items: items.map((r) => r.item_key), attempts: c.attempts, leaseUntil: c.lease_until },
      campaign,
    };
  });
}
