/**
 * One batch job: claim the batch's lease in the ledger and hold it (batch-lease.ts), rewrap its
 * items, commit the outcomes in one ledger transaction (batch-commit.ts).
 * Invariant 1: outcomes are committed only after the store writes they describe.
 * Fencing (invariant 8): a worker never writes once its lease may have run out, so a campaign that
 * was cancelled (or a batch taken over after a freeze) cannot be written by a late wake-up. The
 * lease is checked by the store as each write request leaves the process (`fence`).
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from '../src/log.ts';
import type { Resources } from '../src/runtime/resources.ts';
import { claimBatch } from '../src/ledger/index.ts';
import { BatchInterruptedError, rewrapBatch } from '../src/rewrap/rewrap-batch.ts';
import type { ItemOutcome } from '../src/rewrap/outcome.ts';
import { WriteFencedError } from '../src/stores/envelope-store.ts';
import { describeError, noteBatchFailure } from './batch-failure.ts';
import { BatchLease, LeaseLostError } from './batch-lease.ts';
import { commitOutcomes } from './batch-commit.ts';
import { isTransientPgError } from '../src/stores/pg-table-errors.ts';
import { KekMap } from '../src/kek/kek-map.ts';
import { keyMapOf } from '../src/core/campaign-spec.ts';
import { rewrapRange } from './range-batch.ts';

/** Thrown when some items failed transiently: BullMQ retries the job (only those items remain). */
export class RetryLaterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RetryLaterError';
  }
}

export interface ProcessorDeps {
  res: Resources;
  log: Logger;
  workerId: string;
  leaseMs: number;
}

export type BatchResult = 'done' | 'skipped-done' | 'campaign-not-running' | 'fenced' | 'not-found';

export async function processBatch(d: ProcessorDeps, campaignId: string, batchNo: number, jobId: string, signal: AbortSignal): Promise<BatchResult> {
  const owner = `${d.workerId}/${jobId}`;
  const pool = d.res.ledger;
  const sentAt = performance.now();
  const claim = await claimBatch(pool, { campaignId, batchNo, owner, leaseMs: d.leaseMs });
  if (claim.status === 'done') return 'skipped-done';
  if (claim.status === 'not-found') return 'not-found';
  if (claim.status === 'campaign-not-running') return 'campaign-not-running';
  if (claim.status === 'leased') throw new RetryLaterError(`batch ${campaignId}/${batchNo} is leased by ${claim.leaseOwner} until ${claim.leaseUntil.toISOString()}`);

  const { batch, campaign } = claim;
  const log = d.log.child({ campaignId, batchNo, jobId });
  const lease = new BatchLease({ pool, campaignId, batchNo, owner, leaseMs: d.leaseMs, claimSentAt: sentAt, connectWindowMs: d.res.config.s3.connectionTimeoutMs, log, jobSignal: signal });

  let outcomes: ItemOutcome[];
  let interrupted: unknown;
  /* Why the batch goes back to be retried, recorded with the lease's release (campaign health). */
  let retryError: string | undefined;
  try {
    const spec = campaign.spec;
    const target = {
      store: d.res.store(spec, batch.storeId),
      provider: d.res.provider(campaignId, spec),
      keyMap: new KekMap(keyMapOf(spec)),
      signal: lease.signal,
      fence: lease.fence,
    };
    try {
      const opts = { concurrency: spec.options.concurrency };
      outcomes = batch.range
        ? await rewrapRange(d.res, campaign, batch.storeId, target.store, batch.range, (items, reads) => rewrapBatch(target, items, { ...opts, ...(reads ? { reads } : {}) }), lease.signal)
        : await rewrapBatch(target, batch.items.map((key) => ({ key })), opts);
    } catch (err) {
      if (!(err instanceof BatchInterruptedError)) throw err;
      outcomes = err.completed;
      interrupted = err.cause;
    }
    const batchRef = { campaignId, batchNo, owner, storeId: batch.storeId, provider: spec.provider.type, campaignKind: campaign.kind, attempt: batch.range ? batch.attempts : undefined };
    const { status, counts } = await commitOutcomes(pool, d.res.metrics, log, batchRef, outcomes, interrupted !== undefined);
    if (status === 'fenced') return 'fenced';
    if (interrupted !== undefined) {
      if (interrupted instanceof LeaseLostError) log.warn({ reason: interrupted.message }, 'batch fenced: stopped before a store write');
      if (interrupted instanceof LeaseLostError || lease.signal.aborted) return 'fenced';
      throw interrupted;
    }
    if (counts.retry > 0) {
      const reasons = [...new Set(outcomes.flatMap((o) => (o.status === 'retry' ? [o.reason] : [])))];
      const first = outcomes.find((o) => o.status === 'retry') as Extract<ItemOutcome, { status: 'retry' }>;
      const message = `${counts.retry} of ${outcomes.length} items failed transiently (${reasons.join(', ')}); retrying`;
      retryError = `${message}; first: ${first.detail}`; // the ledger may name items; logs only the counts
      throw new RetryLaterError(message);
    }
    return 'done';
  } catch (err) {
    // Issue 13, point 6: a batch failing as a whole is counted; too many pause the campaign.
    if (!(err instanceof RetryLaterError) && !(err instanceof WriteFencedError) && !lease.signal.aborted) await noteBatchFailure(pool, log, { campaignId, batchNo, owner }, err);
    if (err instanceof RetryLaterError) retryError ??= err.message;
    else if (isTransientPgError(err)) retryError = `ledger unavailable or too slow; retrying: ${describeError(err)}`;
    throw err;
  } finally {
    await lease.release(retryError);
  }
}
