/**
 * The canary of a batch-form campaign (src/campaign/canary.ts) writes items of the first ranges
 * before any batch runs. The batch's claim later reads its range with the source's KEK filter and
 * no longer selects them, so they are counted here, on the batch row, as a commit would count
 * them: `rewrapped`, `keks`/`from_keks`, `moved_at`, samples, the per-item inventory where the
 * store keeps one, and the campaign's counters and progress. The batch's own commits then count
 * the rest of its range, and its `planned` (the counted total, once done) includes them.
 * Invariant 1: called only after the canary's store writes succeeded.
 * Refused (nothing recorded) for a batch that is done, leased by a worker or committed by one:
 * what its range read is its own count then. A canary that stops between its write and this call
 * leaves the row moved and uncounted; beginCanaryRange counted the canary as a claim of the
 * range, so its last commit counts that row unconfirmed (skipped) and `planned` holds.
 */
import type pg from 'pg';
import { withTransaction } from '../transaction.ts';
import { TOTALS_SQL } from './campaign-totals.ts';
import { addKek, INVENTORY_SQL, plannedShare, type KekCounts } from './commitBatchRange.ts';
import { addSamples, batchSamples, samplesPerKek, type BatchSample } from '../batch-samples.ts';
import type { CanaryMove } from './recordCanaryMoves.ts';

export async function recordCanaryRangeMoves(pool: pg.Pool, campaignId: string, batchNo: number, moves: CanaryMove[]): Promise<'recorded' | 'batch-claimed'> {
  if (moves.length === 0) return 'recorded';
  return withTransaction(pool, async (client) => {
    const { rows } = await client.query<{
      state: string; leased: boolean; counted_attempt: number; store_id: string; item_count: number; counted: number; keks: KekCounts | null; from_keks: KekCounts | null;
      sample: BatchSample | BatchSample[] | null; has_inventory: boolean;
    }>(
      `SELECT b.state, (b.lease_until IS NOT NULL AND b.lease_until > now()) AS leased, b.counted_attempt, b.store_id, b.item_count, b.rewrapped + b.skipped + b.failed AS counted, b.keks, b.from_keks, b.sample,
              EXISTS (SELECT 1 FROM rewrap_inventory v WHERE v.store_id = b.store_id) AS has_inventory
         FROM rewrap_batches b WHERE b.campaign_id = $1 AND b.batch_no = $2 FOR UPDATE`,
      [campaignId, batchNo],
    );
    const b = rows[0];
    if (!b) throw new Error(`recordCanaryRangeMoves: batch ${batchNo} of campaign ${campaignId} does not exist in the ledger`);
    if (b.state === 'done' || b.leased || b.counted_attempt > 0) return 'batch-claimed';
    const keks = { ...(b.keks ?? {}) };
    const fromKeks = { ...(b.from_keks ?? {}) };
    for (const m of moves) {
      addKek(keks, m.to);
      addKek(fromKeks, m.from);
    }
    const samples = addSamples(batchSamples(b.sample), moves.map((m) => ({ key: m.itemKey, from: m.from, to: m.to })), samplesPerKek(batchNo));
    await client.query(
      `UPDATE rewrap_batches SET rewrapped = rewrapped + $3, moved_at = coalesce(moved_at, now()), keks = $4::jsonb, from_keks = $5::jsonb, sample = $6::jsonb
        WHERE campaign_id = $1 AND batch_no = $2`,
      [campaignId, batchNo, moves.length, JSON.stringify(keks), JSON.stringify(fromKeks), JSON.stringify(samples)],
    );
    if (b.has_inventory) {
      await client.query(INVENTORY_SQL, [
        campaignId, b.store_id, moves.map((m) => m.itemKey), moves.map((m) => m.to.id), moves.map((m) => m.to.version ?? null), moves.map((m) => m.to.materialId ?? null),
      ]);
    }
    const plannedDelta = plannedShare(b.item_count, b.counted + moves.length, false) - plannedShare(b.item_count, b.counted, false);
    await client.query(TOTALS_SQL, [campaignId, moves.length, 0, 0, moves.length, [], [], plannedDelta]);
    return 'recorded';
  });
}
