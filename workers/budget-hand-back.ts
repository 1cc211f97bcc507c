/**
 * A batch whose campaign's KMS budget is already spoken for gives its worker slot back before it
 * starts (issue 20, point a). A campaign with a budget of its own (a local keyring, a PKCS#11
 * token) moves at most at that rate however many slots hold its batches: a slot that takes one
 * more of its batches while the batches already in hand here keep that budget busy for a second
 * or more would only wait on it, while another campaign's job waits in Redis for a slot.
 * So the job goes back to BullMQ's delayed set for part of that time (`moveToDelayed` with
 * `skipAttempt`, then `DelayedError`: not an attempt, not a failure), keeping its priority (its
 * rank, scheduler/feeder.ts). It is decided before the claim: no lease to keep safe, nothing
 * written to the ledger (a claim would count an attempt, and the delta pass re-checks batches
 * attempted more often than committed); the batch stays enqueued and runs after the delay.
 * The first batch of a campaign in a process always runs, so the budget keeps its full rate.
 */
import { DelayedError, type Job } from 'bullmq';

/** The batches in hand keep the budget busy at least this long: hand the next one back. */
export const HAND_BACK_TAKEN_MS = 1_000;
/** Never delayed longer than this: the budget may free up sooner (a batch ends, another process stops drawing). */
const MAX_DELAY_MS = 5_000;

export interface BudgetInHand {
  /** The campaign's KMS budget (requests/s for all workers); 0 = unlimited. */
  ratePerSec: number;
  /** Provider calls one batch keeps in flight (the campaign's item concurrency). */
  callsPerBatch: number;
  /** Batches of the campaign this process already works on (this one not included). */
  batchesInHand: number;
  /** How long the calls already waiting here need at the budget's current (AIMD) rate. */
  backlogMs: number;
}

/**
 * How long the batches in hand keep the campaign's budget busy: the calls waiting now, or the
 * calls they keep in flight at the budget's rate (before they have started asking), whichever is
 * longer. Conservative: a provider that answers slowly may need more batches than this assumes.
 */
export function budgetTakenMs(b: BudgetInHand): number {
  if (b.ratePerSec <= 0 || b.batchesInHand <= 0) return 0;
  return Math.max(b.backlogMs, (b.batchesInHand * b.callsPerBatch * 1000) / b.ratePerSec);
}

/** The delay before the job is offered again, or undefined to run it now. Jittered, so handed-back jobs do not return at once. */
export function handBackDelayMs(takenMs: number, random = Math.random): number | undefined {
  if (takenMs < HAND_BACK_TAKEN_MS) return undefined;
  /* Back before the batches in hand are done, so the budget never idles for want of a batch. */
  const base = Math.min(MAX_DELAY_MS, takenMs / 2);
  return Math.round(base / 2 + random() * (base / 2));
}

/** Moves the job to delayed and throws DelayedError (BullMQ then leaves it there). */
export async function handBack(job: Job, token: string, delayMs: number): Promise<never> {
  await job.moveToDelayed(Date.now() + delayMs, token);
  throw new DelayedError(`batch handed back for ${delayMs} ms: its KMS budget is taken by the batches in hand`);
}
