/**
 * A batch failed as a whole (its job threw an error that is no item's): count it on the batch row,
 * and once the batch has failed the campaign's maxBatchFailures times (spec.options, default 5),
 * pause the campaign with the batch and the error as its reason. Without this a batch that can
 * never succeed (its table was dropped, its store cannot be built) is retried by BullMQ, re-added
 * by the reconciler when BullMQ gives up, and retried again, forever (issue 13, point 6).
 * Counted only while `owner` holds the batch's lease: a worker fenced off (its lease taken over,
 * the campaign paused) reports nothing. Lock order as everywhere: batch row, then campaign row.
 * `error` is an error message (names, codes, SQL states; never key bytes); it is cut to 500
 * characters and one line.
 */
import type pg from 'pg';
import { withTransaction } from '../transaction.ts';
import { validateLease } from '../lease-guard.ts';

export const DEFAULT_MAX_BATCH_FAILURES = 5;

export interface BatchFailureResult {
  /** False when `owner` no longer held the batch (nothing was counted). */
  counted: boolean;
  failures: number;
  /** True when this failure paused the campaign. */
  paused: boolean;
}

export function maxBatchFailuresOf(spec: unknown): number {
  const v = (spec as { options?: { maxBatchFailures?: unknown } } | null)?.options?.maxBatchFailures;
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 ? v : DEFAULT_MAX_BATCH_FAILURES;
}

export async function recordBatchFailure(
  pool: pg.Pool,
  req: { campaignId: string; batchNo: number; owner: string; error: string },
): Promise<BatchFailureResult> {
  validateLease('recordBatchFailure', req);
  const error = req.error.replace(/\s+/g, ' ').slice(0, 500);
  return withTransaction(pool, async (client) => {
    const { rows } = await client.query<{ failures: number; store_id: string }>(
      `UPDATE rewrap_batches SET failures = failures + 1, last_error = $4
        WHERE campaign_id = $1 AND batch_no = $2 AND lease_owner = $3 AND state <> 'done'
        RETURNING failures, store_id`,
      [req.campaignId, req.batchNo, req.owner, error],
    );
    if (rows.length === 0) return { counted: false, failures: 0, paused: false };
    const { failures, store_id: storeId } = rows[0];
    const { rows: campaigns } = await client.query<{ spec: unknown }>('SELECT spec FROM rewrap_campaigns WHERE id = $1', [req.campaignId]);
    const max = maxBatchFailuresOf(campaigns[0]?.spec);
    if (failures < max) return { counted: true, failures, paused: false };
    const reason = `auto-paused: batch ${req.batchNo} (${storeId}) failed as a whole ${failures} times (maxBatchFailures ${max}); last error: ${error}`;
    const { rowCount } = await client.query(
      `UPDATE rewrap_campaigns SET state = 'paused', pause_reason = $2, updated_at = now() WHERE id = $1 AND state = 'running'`,
      [req.campaignId, reason],
    );
    return { counted: true, failures, paused: rowCount === 1 };
  });
}
