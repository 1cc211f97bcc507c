/**
 * The lease of one claimed batch, as the worker holds it: renewed in the ledger every lease/3,
 * checked by the stores as each write request leaves the process (`fence`, invariant 8), and
 * released when the batch ends. When a renewal finds the lease gone (the campaign was cancelled
 * or paused, another worker took the batch over), `signal` aborts and every later write is fenced.
 */
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import type { Logger } from '../src/log.ts';
import { releaseLease, renewLease } from '../src/ledger/index.ts';
import { WriteFencedError } from '../src/stores/envelope-store.ts';

/** A WriteFencedError: the stores let it through unchanged from the request that it stopped. */
export class LeaseLostError extends WriteFencedError {
  constructor(message: string) {
    super(message);
    this.name = 'LeaseLostError';
  }
}

export interface BatchLeaseOptions {
  pool: pg.Pool;
  campaignId: string;
  batchNo: number;
  owner: string;
  leaseMs: number;
  /** performance.now() when the claim that granted the lease was sent. */
  claimSentAt: number;
  /** The store client's connect timeout: part of the fence's safety margin (LocalLease). */
  connectWindowMs: number;
  log: Logger;
  /** The job's own signal (worker shutdown): aborts `signal` too. */
  jobSignal: AbortSignal;
}

export class BatchLease {
  readonly #o: BatchLeaseOptions;
  readonly #local: LocalLease;
  readonly #ac = new AbortController();
  readonly #renewer: NodeJS.Timeout;
  readonly #onAbort: () => void;

  constructor(o: BatchLeaseOptions) {
    this.#o = o;
    this.#local = new LocalLease(o.leaseMs, o.claimSentAt, o.connectWindowMs);
    this.#onAbort = () => this.#ac.abort(o.jobSignal.reason);
    o.jobSignal.addEventListener('abort', this.#onAbort, { once: true });
    this.#renewer = setInterval(() => this.#renew(), Math.max(200, Math.floor(o.leaseMs / 3)));
  }

  /** Aborted when the job is stopped or the lease is lost: pass it to every store and provider call. */
  get signal(): AbortSignal {
    return this.#ac.signal;
  }

  /** Invariant 8: throws LeaseLostError unless the lease is surely still held as the write leaves. */
  readonly fence = (): void => this.#local.check();

  #renew(): void {
    const { pool, campaignId, batchNo, owner, leaseMs, log } = this.#o;
    const at = performance.now();
    renewLease(pool, { campaignId, batchNo, owner, leaseMs }).then(
      (r) => {
        if (r.ok) this.#local.renewed(at);
        else {
          if (!this.#ac.signal.aborted) log.warn({ campaignState: r.campaignState ?? 'gone' }, 'batch lease lost: this batch writes nothing more');
          this.#local.lose(`campaign is ${r.campaignState ?? 'gone'}`);
          this.#ac.abort(new LeaseLostError(`lease of batch ${campaignId}/${batchNo} lost: campaign is ${r.campaignState ?? 'gone'}`));
        }
      },
      (err: unknown) => log.warn({ err }, 'lease renewal failed; writes stop when the lease runs out'),
    );
  }

  /**
   * Stops renewing and gives the batch back (a failed release expires by itself); `retryError`
   * says why the batch goes back to be retried (campaign health).
   */
  async release(retryError?: string): Promise<void> {
    const { pool, campaignId, batchNo, owner, log } = this.#o;
    clearInterval(this.#renewer);
    this.#o.jobSignal.removeEventListener('abort', this.#onAbort);
    await releaseLease(pool, { campaignId, batchNo, owner, retryError }).catch((err: unknown) => log.warn({ err }, 'lease release failed; it expires by itself'));
  }
}

/**
 * The lease as this process sees it, on the monotonic clock (which keeps running while the
 * process is frozen). Valid until (time the last successful renewal was SENT) + lease - margin.
 * The margin covers what may still happen to a write after the check passed: the request waits
 * for a socket and connects (the S3 client's connect timeout bounds both; past it the request
 * fails unsent), then travels. So it is min(2 s, lease/4) plus min(connect timeout, lease/4):
 * with the defaults (15 s lease, 3 s connect) a write passes the check only while 5 s of the
 * lease remain, and leaves (or fails unsent) with at least 2 s of it left.
 */
export class LocalLease {
  private validUntil: number;
  private lost?: string;
  private readonly margin: number;

  constructor(
    private readonly leaseMs: number,
    sentAt: number,
    connectWindowMs: number,
    private readonly now: () => number = () => performance.now(),
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
    if (this.now() > this.validUntil) throw new LeaseLostError('lease may have expired; not writing');
  }
}
