import { validateLease } from '../lease-guard.ts';
import type { Queryable } from '../types.ts';

/**
 * Gives the lease back (e.g. on shutdown) so another worker can claim the batch at once.
 * `retryError` says why the batch goes back unfinished, to be retried (items that failed
 * transiently: KMS or store unavailable, throttled; the ledger itself unavailable or too slow).
 * It is kept in `last_error` until the batch is done: campaignProgress counts such batches as
 * retrying, and a running campaign with any is shown as degraded, with that reason. Same column
 * as whole-batch failures (recordBatchFailure), which are retried too; only those are counted.
 * An error message (names, codes, reasons), never key bytes; one line, at most 500 characters.
 */
export async function releaseLease(db: Queryable, req: { campaignId: string; batchNo: number; owner: string; retryError?: string }): Promise<boolean> {
  validateLease('releaseLease', req);
  const note = req.retryError === undefined ? null : req.retryError.replace(/\s+/g, ' ').slice(0, 500);
  const { rowCount } = await db.query(
    `UPDATE rewrap_batches SET lease_owner = NULL, lease_until = NULL, last_error = coalesce($4, last_error)
      WHERE campaign_id = $1 AND batch_no = $2 AND lease_owner = $3 AND state <> 'done'`,
    [req.campaignId, req.batchNo, req.owner, note],
  );
  return rowCount === 1;
}
