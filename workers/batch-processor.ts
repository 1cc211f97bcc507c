/**
 * One batch job: claim the batch's lease in the ledger, rewrap its items, commit the outcomes
 * in one ledger transaction.
 * Invariant 1: outcomes are committed only after the store writes they describe.
 * Fencing (invariant 8): a worker never writes once its lease may have run out, so a campaign that
 * was cancelled (or a batch taken over after a freeze) cannot be written by a late wake-up. The
 * lease is checked by the store as each write request leaves the process (`fence`).
 */
import { performance } from 'node:perf_hooks';
import { auditWrite } from '../src/rewrap/audit.ts';
import type { Logger } from '../src/log.ts';
import type { Resources } from '../src/runtime/resources.ts';
import { claimBatch, commitBatch, releaseLease, renewLease } from '../src/ledger/index.ts';
import type { ItemOutcomeRecord } from '../src/ledger/types.ts';
import { BatchInterruptedError, rewrapBatch } from '../src/rewrap/rewrap-batch.ts';
import type { ItemOutcome } from '../src/rewrap/outcome.ts';
import { countOutcomes } from '../src/rewrap/outcome.ts';
import { WriteFencedError } from '../src/stores/envelope-store.ts';
import { describeError, noteBatchFailure } from './batch-failure.ts';
import { isTransientPgError } from '../src/stores/pg-table-errors.ts';

/** A WriteFencedError: the stores let it through unchanged from the request that it stopped. */
export class LeaseLostError extends WriteFencedError {
  constructor(message: string) {
    super(message);
    this.name = 'LeaseLostError';
  }
}

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
  const lease = new LocalLease(d.leaseMs, sentAt, d.res.config.s3.connectionTimeoutMs);
  const ac = new AbortController();
  const onAbort = () => ac.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  const renewer = setInterval(() => {
    const at = performance.now();
    renewLease(pool, { campaignId, batchNo, owner, leaseMs: d.leaseMs }).then(
      (r) => {
        if (r.ok) lease.renewed(at);
        else {
          if (!ac.signal.aborted) log.warn({ campaignState: r.campaignState ?? 'gone' }, 'batch lease lost: this batch writes nothing more');
          lease.lose(`campaign is ${r.campaignState ?? 'gone'}`);
          ac.abort(new LeaseLostError(`lease of batch ${campaignId}/${batchNo} lost: campaign is ${r.campaignState ?? 'gone'}`));
        }
      },
      (err: unknown) => log.warn({ err }, 'lease renewal failed; writes stop when the lease runs out'),
    );
  }, Math.max(200, Math.floor(d.leaseMs / 3)));

  let outcomes: ItemOutcome[];
  let interrupted: unknown;
  /* Why the batch goes back to be retried, recorded with the lease's release (campaign health). */
  let retryError: string | undefined;
  try {
    const spec = campaign.spec;
    const target = {
      store: d.res.store(spec, batch.storeId),
      provider: d.res.provider(campaignId, spec),
      from: spec.from,
      to: spec.to,
      signal: ac.signal,
      fence: () => lease.check(),
    };
    try {
      outcomes = await rewrapBatch(target, batch.items.map((key) => ({ key })), { concurrency: spec.options.concurrency });
    } catch (err) {
      if (!(err instanceof BatchInterruptedError)) throw err;
      outcomes = err.completed;
      interrupted = err.cause;
    }
    /* The writes have landed, whatever the commit does next (fenced, failing): audit them now. */
    for (const o of outcomes) auditWrite(log, batch.storeId, o);
    const records = outcomes.flatMap(toRecord(batch.storeId));
    const counts = countOutcomes(outcomes);
    const final = interrupted === undefined && counts.retry === 0;
    const m = d.res.metrics;
    const commitStarted = performance.now();
    const commit = await commitBatch(pool, { campaignId, batchNo, owner, outcomes: records, final }).catch((err: unknown) => {
      m?.batchCommits.inc({ outcome: 'error' });
      throw err;
    });
    m?.batchCommits.inc({ outcome: commit.status });
    m?.batchCommitLatency.observe({ outcome: commit.status }, (performance.now() - commitStarted) / 1000);
    if (m) {
      const labels = { store_kind: batch.storeId.startsWith('s3://') ? 's3' : 'pg', provider: spec.provider.type, campaign_kind: campaign.kind };
      for (const o of outcomes) m.items.inc({ ...labels, result: o.status, reason: o.status === 'rewrapped' ? '' : o.reason });
    }
    if (commit.status === 'fenced') {
      log.warn({ leaseOwner: commit.leaseOwner }, 'batch lease was taken over; nothing committed (the new owner re-reads every item)');
      return 'fenced';
    }
    log.info({ ...counts, changed: commit.changed, batchDone: commit.batchDone }, 'batch committed');
    if (commit.autoPaused) log.warn('campaign auto-paused: failure threshold crossed');
    if (interrupted !== undefined) {
      if (interrupted instanceof LeaseLostError) log.warn({ reason: interrupted.message }, 'batch fenced: stopped before a store write');
      if (interrupted instanceof LeaseLostError || ac.signal.aborted) return 'fenced';
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
    if (!(err instanceof RetryLaterError) && !(err instanceof WriteFencedError) && !ac.signal.aborted) await noteBatchFailure(pool, log, { campaignId, batchNo, owner }, err);
    if (err instanceof RetryLaterError) retryError ??= err.message;
    else if (isTransientPgError(err)) retryError = `ledger unavailable or too slow; retrying: ${describeError(err)}`;
    throw err;
  } finally {
    clearInterval(renewer);
    signal.removeEventListener('abort', onAbort);
    await releaseLease(pool, { campaignId, batchNo, owner, retryError }).catch((err: unknown) => log.warn({ err }, 'lease release failed; it expires by itself'));
  }
}


const toRecord =
  (storeId: string) =>
  (o: ItemOutcome): ItemOutcomeRecord[] => {
    switch (o.status) {
      case 'rewrapped':
        return [{ storeId, itemKey: o.key, outcome: 'rewrapped', from: o.from, to: o.to }];
      case 'skipped':
        return [{ storeId, itemKey: o.key, outcome: 'skipped', reason: o.reason, currentKek: o.current }];
      case 'failed':
        return [{ storeId, itemKey: o.key, outcome: 'failed', reason: o.reason, detail: o.detail, currentKek: o.current }];
      case 'retry':
        return [];
    }
  };

/**
 * The lease as this process sees it, on the monotonic clock (which keeps running while the
 * process is frozen). Valid until (time the last successful renewal was SENT) + lease - margin.
 * The margin covers what may still happen to a write after the check passed: the request waits
 * for a socket and connects (the S3 client's connect timeout bounds both; past it the request
 * fails unsent), then travels. So it is min(2 s, lease/4) plus min(connect timeout, lease/4):
 * with the defaults (15 s lease, 3 s connect) a write passes the check only while 5 s of the
 * lease remain, and leaves (or fails unsent) with at least 2 s of it left.
 */
class LocalLease {
  private validUntil: number;
  private lost?: string;
  private readonly margin: number;

  constructor(
    private readonly leaseMs: number,
    sentAt: number,
    connectWindowMs: number,
  ) {
    this.margin = Math.min(2000, leaseMs / 4) + Math.min(connectWindowMs, leaseMs / 4);
    this.validUntil = sentAt + leaseMs - this.margin;
  }

  renewed(sentAt: number): void {
    if (!this.lost) this.validUntil = Math.max(this.validUntil, sentAt + this.leaseMs - this.margin);
  }

  lose(why: string): void {
    this.lost = why;
  }

  check(): void {
    if (this.lost) throw new LeaseLostError(`lease lost (${this.lost}); not writing`);
    if (performance.now() > this.validUntil) throw new LeaseLostError('lease may have expired; not writing');
  }
}
