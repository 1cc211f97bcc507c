/**
 * One KMS requests-per-second budget shared by every worker process, kept in Redis
 * (kms-budget-script.ts: a token bucket with reservations, and AIMD when KMS throttles).
 *
 * Tokens travel in blocks (issue 17, point 6). Asking Redis once per KMS request cost, in bench
 * B5, 0.43 ms of Redis CPU per request: at a 10,000 req/s quota that is 4.3 Redis cores, and Redis
 * runs scripts on one. So each process asks for a block of tokens sized to ~BLOCK_MS of its own
 * recent rate, and hands them out locally at the times the grant says they are due: the global
 * pace is the bucket's, the round trips are a few per second per process whatever the quota.
 * A token nobody takes within GRACE_MS of being due expires (handing it out later would be a
 * burst), and the rest of its block goes back to the bucket in one round trip. When KMS
 * throttles, the process drops what it holds (granted at a pace KMS refused) and tells the bucket;
 * the others learn the lower rate with their next block, at most HORIZON_MS later.
 */
import type { RedisConnection } from './redis-connection.ts';
import { BUDGET_SCRIPT } from './kms-budget-script.ts';
import { blockSize, dueAt, firstDueFrom, nextRateEstimate, remaining, type TokenBlock } from './kms-budget-blocks.ts';

/** A block covers about this much of the process's recent rate. 0: one token per round trip. */
export const DEFAULT_BLOCK_MS = 200;
/** A due token may still be handed out this late (a busy event loop); later, it expires. */
const GRACE_MS = 100;
/** Time constant of the process's recent-rate estimate. */
const RATE_TAU_MS = 1000;

export interface BudgetState {
  ratePerSec: number;
}

export interface KmsBudgetOptions {
  /** Block size as milliseconds of this process's recent rate (default 200); 0 = per request. */
  blockMs?: number;
}

/** What this process did with the budget, for the bench (round trips per KMS request). */
export interface KmsBudgetCounters {
  roundTrips: number;
  granted: number;
  used: number;
  returned: number;
  expired: number;
}

interface Waiter {
  resolve(): void;
  reject(err: unknown): void;
}

const COMMAND = 'rewrapKmsBudget';
type BudgetReply = [granted: number, before1000: number, rate1000: number, waitMs: number];

export class KmsBudget {
  readonly counters: KmsBudgetCounters = { roundTrips: 0, granted: 0, used: 0, returned: 0, expired: 0 };
  readonly #blockMs: number;
  readonly #waiters: Waiter[] = [];
  #blocks: TokenBlock[] = [];
  #fetching = false;
  #retryAt = 0;
  #timer?: NodeJS.Timeout;
  #timerAt = Infinity;
  /** The budget's current (AIMD) rate, as of the last grant. */
  #budgetRate: number;
  #recentRate = 0;
  #usedSinceEstimate = 0;
  #estimatedAt = performance.now();

  constructor(
    private readonly redis: RedisConnection,
    private readonly key: string,
    private readonly maxRatePerSec: number,
    options: KmsBudgetOptions = {},
  ) {
    this.#blockMs = options.blockMs ?? DEFAULT_BLOCK_MS;
    this.#budgetRate = maxRatePerSec;
    if (!(COMMAND in redis)) redis.defineCommand(COMMAND, { numberOfKeys: 1, lua: BUDGET_SCRIPT });
  }

  get unlimited(): boolean {
    return this.maxRatePerSec <= 0;
  }

  /** Resolves when one request may be sent (its token is due); rejects when `signal` aborts. */
  take(signal?: AbortSignal): Promise<void> {
    if (this.unlimited) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason); // a rejection, like every other way take fails
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { resolve, reject };
      if (signal) {
        const onAbort = () => {
          const i = this.#waiters.indexOf(w);
          if (i >= 0) this.#waiters.splice(i, 1);
          reject(signal.reason);
        };
        signal.addEventListener('abort', onAbort, { once: true });
        w.resolve = () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        };
        w.reject = (err) => {
          signal.removeEventListener('abort', onAbort);
          reject(err);
        };
      }
      this.#waiters.push(w);
      this.#pump();
    });
  }

  /** KMS said ThrottlingException: drop what this process holds, and the bucket cuts its rate. */
  async throttled(): Promise<void> {
    if (this.unlimited) return;
    for (const b of this.#blocks) this.counters.expired += remaining(b);
    this.#blocks = [];
    try {
      const [, , rate1000] = await this.#call('throttled', 0);
      this.#budgetRate = rate1000 / 1000;
      this.#recentRate = Math.min(this.#recentRate, this.#budgetRate);
    } finally {
      this.#pump();
    }
  }

  /**
   * How long the calls already waiting in this process need at the budget's whole current rate:
   * a lower bound of the wait of one more call (other processes draw on the bucket too). The
   * worker hands a new batch back while this is long (workers/budget-hand-back.ts).
   */
  backlogMs(): number {
    if (this.unlimited || this.#waiters.length === 0) return 0;
    return (this.#waiters.length * 1000) / Math.max(this.#budgetRate, 1e-3);
  }

  /** Calls waiting in this process for a token now. */
  get waiting(): number {
    return this.#waiters.length;
  }

  async state(): Promise<BudgetState> {
    const rate = await this.redis.hget(this.key, 'rate');
    return { ratePerSec: rate === null ? this.maxRatePerSec : Number(rate) };
  }

  #call(mode: 'take' | 'return' | 'throttled', n: number): Promise<BudgetReply> {
    this.counters.roundTrips++;
    return (this.redis as unknown as Record<string, (...a: unknown[]) => Promise<BudgetReply>>)[COMMAND]!(this.key, this.maxRatePerSec, mode, n);
  }

  /** Hands out due tokens in FIFO order, expires or returns unused ones, asks for the next block. */
  #pump(): void {
    const now = performance.now();
    while (this.#waiters.length > 0) {
      const b = this.#blocks[0];
      if (b === undefined) break;
      if (b.next > b.count) {
        this.#blocks.shift();
        continue;
      }
      const due = dueAt(b, b.next);
      if (due > now) {
        this.#arm(due);
        break;
      }
      /* Late (a busy event loop) but wanted: still this process's token, granted for the past. */
      b.next++;
      this.counters.used++;
      this.#usedSinceEstimate++;
      this.#waiters.shift()!.resolve();
    }
    if (this.#waiters.length === 0) {
      this.#expireIdle(now);
      return;
    }
    if (this.#fetching) return;
    if (now < this.#retryAt) {
      this.#arm(this.#retryAt);
      return;
    }
    /* Ask for the next block before this one runs dry (a round trip takes time). */
    const last = this.#blocks.at(-1);
    const runsDryAt = last === undefined || remaining(last) === 0 ? now : dueAt(last, last.count);
    if (runsDryAt - now <= Math.max(20, this.#blockMs / 4)) void this.#fetch();
  }

  /** Nobody waits: a token not taken GRACE_MS after it was due expires, and its block goes back. */
  #expireIdle(now: number): void {
    const b = this.#blocks.find((x) => remaining(x) > 0);
    if (b === undefined) {
      this.#blocks = [];
      return;
    }
    const due = dueAt(b, b.next);
    if (due + GRACE_MS > now) {
      this.#arm(due + GRACE_MS);
      return;
    }
    let unused = 0;
    for (const x of this.#blocks) {
      if (remaining(x) === 0) continue;
      const future = Math.max(x.next, firstDueFrom(x, now));
      this.counters.expired += Math.min(x.count + 1, future) - x.next;
      unused += Math.max(0, x.count - future + 1);
    }
    this.#blocks = [];
    if (unused > 0) {
      this.counters.returned += unused;
      this.#call('return', unused).catch(() => undefined); // lost: they expire in the bucket's window
    }
  }

  async #fetch(): Promise<void> {
    this.#fetching = true;
    const now = performance.now();
    const estimate = nextRateEstimate(this.#recentRate, this.#usedSinceEstimate, now - this.#estimatedAt, RATE_TAU_MS);
    if (estimate !== undefined) {
      this.#recentRate = estimate;
      this.#usedSinceEstimate = 0;
      this.#estimatedAt = now;
    }
    const want = blockSize({ recentRatePerSec: this.#recentRate, blockMs: this.#blockMs, waiting: this.#waiters.length, budgetRatePerSec: this.#budgetRate });
    try {
      const [granted, before1000, rate1000, waitMs] = await this.#call('take', want);
      const at = performance.now();
      this.#budgetRate = rate1000 / 1000;
      if (granted > 0) {
        this.counters.granted += granted;
        this.#blocks.push({ at, before: before1000 / 1000, spacingMs: 1000 / this.#budgetRate, count: granted, next: 1 });
      } else {
        this.#retryAt = at + waitMs + Math.random() * Math.min(20, waitMs);
      }
    } catch (err) {
      /* Redis unreachable: every waiter fails as its own call would have. */
      for (const w of this.#waiters.splice(0)) w.reject(err);
    } finally {
      this.#fetching = false;
    }
    this.#pump();
  }

  /** One timer, for the earliest moment something is due. */
  #arm(at: number): void {
    if (this.#timer !== undefined && this.#timerAt <= at) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#timerAt = Infinity;
        this.#pump();
      },
      Math.max(0, Math.ceil(at - performance.now())),
    );
    this.#timer.unref();
  }
}
