/**
 * A batch whose campaign's KMS budget is already spoken for gives its worker slot back before it
 * starts (issue 20, point a). A campaign with a budget of its own (a local keyring, a PKCS#11
 * token) moves at most at that rate however many slots hold its batches: a slot that takes one
 * more of its batches while the batches already in hand here are held back by that budget would
 * only wait on it, while another campaign's job waits in Redis for a slot.
 * So the job goes back to BullMQ's delayed set for about as long as the calls waiting here need
 * (`moveToDelayed` with `skipAttempt`, then `DelayedError`: not an attempt, not a failure),
 * keeping its priority (its rank, scheduler/feeder.ts). It is decided before the claim: no lease
 * to keep safe, nothing written to the ledger (a claim would count an attempt, and the delta pass
 * re-checks batches attempted more often than committed); the batch stays enqueued and runs after
 * the delay. The first batch of a campaign in a process always runs, so the budget keeps its rate.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { DelayedError, type Job } from 'bullmq';
import type { CampaignSpec } from '../src/core/campaign-spec.ts';

/** Delays of a handed-back job: long enough not to spin, short enough that the budget never idles. */
const MIN_DELAY_MS = 250;
const MAX_DELAY_MS = 5_000;
/** Batches taken together have not asked the budget yet: how long to let them show whether it holds them back. */
const SETTLE_MS = 500;

export interface BudgetInHand {
  /** The campaign's KMS budget (requests/s for all workers); 0 = unlimited. */
  ratePerSec: number;
  /** Provider calls one batch keeps in flight (the campaign's item concurrency). */
  callsPerBatch: number;
  /** Batches of the campaign this process already works on (this one not included). */
  batchesInHand: number;
  /** Calls of the campaign waiting here for a budget token now. */
  waiting: number;
}

/**
 * The batches in hand are held back by the budget, not by the provider: half a batch's calls or
 * more wait for tokens (a provider that answered slower than the budget allows would leave none
 * waiting), or their calls in flight alone need a second or more of the whole budget.
 */
export function budgetHoldsBack(b: BudgetInHand): boolean {
  if (b.ratePerSec <= 0 || b.batchesInHand <= 0) return false;
  if ((b.batchesInHand * b.callsPerBatch) / b.ratePerSec >= 1) return true;
  return b.waiting >= Math.max(1, Math.ceil(b.callsPerBatch / 2));
}

/** The delay before a handed-back job is offered again: about the backlog of the calls waiting, jittered, bounded. */
export function handBackDelayMs(backlogMs: number, random = Math.random): number {
  const base = Math.min(MAX_DELAY_MS, Math.max(MIN_DELAY_MS * 2, backlogMs));
  return Math.round(base / 2 + random() * (base / 2));
}

export interface BudgetUseSource {
  budgetUse(campaignId: string): { waiting: number; used: number; backlogMs: number } | undefined;
}

/**
 * Undefined: run the batch now. Otherwise the delay to hand it back for. `batchesInHand` other
 * batches of the campaign are in hand here; when they were taken together with this one and have
 * not yet drawn a batch's worth of tokens, waits up to SETTLE_MS for them to show it. Handed back
 * only while another job waits for a slot (`othersWaiting`): with nothing else to do, the batch
 * runs, and takes up the budget when the ones in hand are between their calls (reading, writing,
 * committing).
 */
export async function handBackDecision(
  res: BudgetUseSource,
  campaignId: string,
  spec: CampaignSpec,
  batchesInHand: number,
  othersWaiting: () => Promise<boolean>,
): Promise<number | undefined> {
  const ratePerSec = spec.options.kmsRequestsPerSecond;
  const callsPerBatch = spec.options.concurrency;
  if (ratePerSec <= 0 || batchesInHand <= 0) return undefined;
  const settleUntil = performance.now() + SETTLE_MS;
  while ((res.budgetUse(campaignId)?.used ?? 0) < callsPerBatch && performance.now() < settleUntil) await sleep(50);
  const use = res.budgetUse(campaignId) ?? { waiting: 0, used: 0, backlogMs: 0 };
  if (!budgetHoldsBack({ ratePerSec, callsPerBatch, batchesInHand, waiting: use.waiting })) return undefined;
  if (!(await othersWaiting())) return undefined;
  return handBackDelayMs(use.backlogMs);
}

/** Moves the job to delayed and throws DelayedError (BullMQ then leaves it there). */
export async function handBack(job: Job, token: string, delayMs: number): Promise<never> {
  await job.moveToDelayed(Date.now() + delayMs, token);
  throw new DelayedError(`batch handed back for ${delayMs} ms: its KMS budget holds back the batches in hand`);
}
