/**
 * A batch job that failed as a whole (not a transient item retry, not a fence or an abort) is
 * counted in the ledger; after the campaign's maxBatchFailures the ledger pauses the campaign
 * with the batch and the error as its reason (recordBatchFailure). BullMQ still retries the job
 * as before: a paused campaign's job finds 'campaign-not-running' and the feeder withdraws it.
 */
import type pg from 'pg';
import type { Logger } from '../src/log.ts';
import { recordBatchFailure } from '../src/ledger/index.ts';
import { isTransientPgError } from '../src/stores/pg-table-errors.ts';

/** The messages of an error and its causes, outermost first: "read failed: relation "x" does not exist". */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const m = e instanceof Error ? `${e.name === 'Error' ? '' : `${e.name}: `}${e.message}` : String(e);
    if (!parts.some((p) => p.includes(m))) parts.push(m);
  }
  return parts.join(': ');
}

export async function noteBatchFailure(pool: pg.Pool, log: Logger, req: { campaignId: string; batchNo: number; owner: string }, err: unknown): Promise<void> {
  // The ledger itself unavailable or busy (its commit failed): not the batch's fault, nor countable.
  if (isTransientPgError(err)) return;
  try {
    const r = await recordBatchFailure(pool, { ...req, error: describeError(err) });
    if (r.paused) log.warn({ failures: r.failures, err }, 'campaign auto-paused: this batch failed as a whole too often');
    else if (r.counted) log.warn({ failures: r.failures, err }, 'batch failed as a whole; it will be retried');
  } catch (recordErr) {
    log.warn({ err: recordErr }, 'could not record the whole-batch failure in the ledger');
  }
}
