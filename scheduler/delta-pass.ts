/**
 * When a campaign is complete, and when it looks once more. Asked by the scheduler after feeding
 * a running campaign whose plan is done.
 * Complete only when nothing in scope remains under the old KEK: once every batch is done, a
 * delta pass plans the sources again (items that appeared, or were written back under the old KEK,
 * since the plan). A delta pass is clean when all it planned is done and none of it moved (nothing
 * planned moves nothing), and none of its batches may hide a move (deltaPassChanges); then the
 * campaign completes. Read from the ledger, not counted while planning: a plan step that fails
 * after committing a page would lose its count. Rows the source keeps selecting that are already
 * at the target (KMS rows whose application records no material) cannot keep the campaign running.
 * Only for a pass this scheduler began (held in memory): after a restart, or a change of leader,
 * one more pass.
 */
import { beginDeltaPass, campaignProgress, deltaPassChanges, setCampaignState } from '../src/ledger/index.ts';
import type { Campaign, CampaignProgress, Queryable } from '../src/ledger/types.ts';

/** The ledger calls the rule makes (a fake in the unit tests). */
export interface DeltaPassLedger {
  progress(campaignId: string): Promise<Pick<CampaignProgress, 'rewrapped' | 'skipped' | 'failed' | 'batches'>>;
  /** Items the pass that began at `firstBatchNo` moved, and its batches that may hide a move. */
  changesSince(campaignId: string, firstBatchNo: number): Promise<{ moved: number; suspectBatches: number }>;
  /** running -> completed; false when the campaign was no longer running. */
  complete(campaignId: string): Promise<boolean>;
  /** Starts planning the sources again; undefined when the campaign was no longer running. */
  beginPass(campaignId: string): Promise<{ pass: number; firstBatchNo: number } | undefined>;
}

export type CompletionStep =
  /** Batches were fed, the plan is unfinished, or batches are still pending or enqueued. */
  | { kind: 'busy' }
  | { kind: 'completed'; progress: Pick<CampaignProgress, 'rewrapped' | 'skipped' | 'failed'> }
  /** The pass is clean, but `beforeComplete` has more to do (the noncurrent sweep): ask again next tick. */
  | { kind: 'finishing' }
  /** The clean pass was found, but the campaign had left 'running' meanwhile. */
  | { kind: 'not-running' }
  | { kind: 'delta-pass'; pass?: number };

export class DeltaPassRule {
  /* The delta pass this scheduler began last, per campaign (lost on restart: then one more pass). */
  readonly #began = new Map<string, { pass: number; firstBatchNo: number }>();

  constructor(private readonly ledger: DeltaPassLedger) {}

  /**
   * `fed`: batches the scheduler just put in the queue for the campaign. `beforeComplete`: work
   * that runs once the pass is clean and must be done (true) before the campaign completes.
   */
  async step(c: Pick<Campaign, 'id' | 'planDone' | 'deltaPasses'>, fed: number, beforeComplete?: () => Promise<boolean>): Promise<CompletionStep> {
    if (fed > 0 || !c.planDone) return { kind: 'busy' };
    const p = await this.ledger.progress(c.id);
    if (p.batches.pending > 0 || p.batches.enqueued > 0) return { kind: 'busy' };
    const pass = this.#began.get(c.id);
    if (c.deltaPasses > 0 && pass?.pass === c.deltaPasses) {
      const changes = await this.ledger.changesSince(c.id, pass.firstBatchNo);
      if (changes.moved === 0 && changes.suspectBatches === 0) {
        if (beforeComplete && !(await beforeComplete())) return { kind: 'finishing' };
        return (await this.ledger.complete(c.id)) ? { kind: 'completed', progress: p } : { kind: 'not-running' };
      }
    }
    const begun = await this.ledger.beginPass(c.id);
    if (begun) this.#began.set(c.id, begun);
    return { kind: 'delta-pass', pass: begun?.pass };
  }
}

export function ledgerDeltaPasses(db: Queryable): DeltaPassLedger {
  return {
    progress: (id) => campaignProgress(db, id),
    changesSince: (id, firstBatchNo) => deltaPassChanges(db, id, firstBatchNo),
    complete: (id) => setCampaignState(db, id, ['running'], 'completed'),
    beginPass: (id) => beginDeltaPass(db, id),
  };
}
