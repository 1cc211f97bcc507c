/**
 * The arithmetic of a worker's share of the shared KMS budget (kms-budget.ts), kept pure:
 * how many tokens to ask for in one round trip, when each token of a granted block is due,
 * and the worker's recent rate.
 */

/** A block granted by the budget script: `count` tokens, the k-th (1-based) due at dueAt(k). */
export interface TokenBlock {
  /** performance.now() when the grant arrived. */
  readonly at: number;
  /** The bucket's tokens before the grant (negative: reservations queued ahead of this block). */
  readonly before: number;
  /** Milliseconds between two tokens at the rate of the grant. */
  readonly spacingMs: number;
  readonly count: number;
  /** The next token to hand out (1-based); > count when the block is spent. */
  next: number;
}

/** When token k of the block is due (performance.now() clock). */
export function dueAt(b: TokenBlock, k: number): number {
  return b.at + Math.max(0, (k - b.before) * b.spacingMs);
}

/** The first token index of the block still due at or after `t` (tokens before it are past). */
export function firstDueFrom(b: TokenBlock, t: number): number {
  if (t <= b.at) return 1;
  return Math.max(1, Math.ceil(b.before + (t - b.at) / b.spacingMs));
}

/** Tokens of the block not handed out yet. */
export function remaining(b: TokenBlock): number {
  return Math.max(0, b.count - b.next + 1);
}

/**
 * Tokens to ask for: BLOCK_MS of this worker's recent rate, so that each worker's round trips
 * are a few per second whatever the quota (10 workers at 100,000 req/s: blocks of ~2,000).
 * While the estimate is still low (a worker that just started), what is waiting right now
 * counts too, up to an eighth of a block of the whole budget. At least one token.
 */
export function blockSize(o: { recentRatePerSec: number; blockMs: number; waiting: number; budgetRatePerSec: number }): number {
  if (o.blockMs <= 0) return 1;
  const byRate = Math.ceil((Math.min(o.recentRatePerSec, o.budgetRatePerSec) * o.blockMs) / 1000);
  const byDemand = Math.min(o.waiting, Math.ceil((o.budgetRatePerSec * o.blockMs) / 1000 / 8));
  return Math.max(1, byRate, byDemand);
}

/**
 * An exponentially weighted rate (tokens/s) with time constant `tauMs`: `used` tokens were spent
 * over the last `dtMs`. Intervals under 10 ms are too short to say anything: the caller keeps
 * counting (returns undefined).
 */
export function nextRateEstimate(previous: number, used: number, dtMs: number, tauMs: number): number | undefined {
  if (dtMs < 10) return undefined;
  const instant = (used * 1000) / dtMs;
  return previous + (1 - Math.exp(-dtMs / tauMs)) * (instant - previous);
}
