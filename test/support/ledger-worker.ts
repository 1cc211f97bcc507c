/**
 * What a worker does to the ledger, in either ledger form, for tests that read what it leaves
 * (API, reports) without running a store: plan keys, claim a batch, commit its outcomes.
 *   items form:   the keys are planned as items; a claim names the batch's items;
 *   batches form: the keys are planned as id ranges; a claim names the range, and the "store"
 *                 read is the planned keys in lo < key <= hi (text order, as text ids compare),
 *                 or what the test says the range holds when it runs (rows that left it).
 */
import type pg from 'pg';
import { addPlannedItems, addPlannedRanges, claimBatch, commitBatch, commitBatchRange, type ItemOutcomeRecord } from '../../src/ledger/index.ts';
import type { CommitResult, LedgerForm } from '../../src/ledger/types.ts';

/** One page, the whole plan (planDone). */
export async function planKeys(pool: pg.Pool, form: LedgerForm, campaignId: string, storeId: string, keys: string[], batchSize: number): Promise<void> {
  if (form === 'batches') await addPlannedRanges(pool, campaignId, storeId, keys, batchSize, null, { done: true }, true, false);
  else await addPlannedItems(pool, campaignId, storeId, keys, batchSize, { done: true }, true);
}

/** Claims batch `batchNo` and commits it final with `outcomes` of the keys it holds (`keys`: what the batch form reads). */
export async function workBatch(
  pool: pg.Pool,
  campaignId: string,
  batchNo: number,
  keys: readonly string[],
  outcomes: (itemKeys: string[]) => ItemOutcomeRecord[],
): Promise<CommitResult> {
  const c = await claimBatch(pool, { campaignId, batchNo, owner: 'test-worker', leaseMs: 30_000 });
  if (c.status !== 'claimed') throw new Error(`claim ${campaignId}/${batchNo}: ${c.status}`);
  const range = c.batch.range;
  const items = range ? keys.filter((k) => (range.lo === null || k > range.lo) && k <= range.hi && !range.exclude.includes(k)) : c.batch.items;
  const req = { campaignId, batchNo, owner: 'test-worker', outcomes: outcomes(items), final: true };
  return range ? commitBatchRange(pool, { ...req, attempt: c.batch.attempts }) : commitBatch(pool, req);
}
