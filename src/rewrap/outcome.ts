/** What happened to one item: the ledger commits exactly this. */
import type { KekVersionRef } from '../core/kek-ref.ts';
import type { PermanentReason, SkipReason, TransientReason } from '../core/reasons.ts';
import type { EnvelopeFileSeen } from '../stores/envelope-store.ts';

export type ItemOutcome =
  /**
   * Invariant 1: only produced after the store write succeeded. `problem`: the write landed but
   * a follow-up of it failed (S3 tags not put back); it goes to the audit event. `envelopeFile`
   * (rewrapped and skipped): the item's instruction file as the write left it or the read found it.
   */
  | { status: 'rewrapped'; key: string; from: KekVersionRef; to: KekVersionRef; requestId?: string; conflicts: number; problem?: string; envelopeFile?: EnvelopeFileSeen }
  /**
   * `recorded`: the store was written anyway, to record the KEK material nobody had recorded
   * (kms-material.ts); the DEK's wrapping material did not change.
   */
  | { status: 'skipped'; key: string; reason: SkipReason; current?: KekVersionRef; recorded?: { requestId?: string }; problem?: string; envelopeFile?: EnvelopeFileSeen }
  | { status: 'failed'; key: string; reason: PermanentReason; detail: string; current?: KekVersionRef }
  /** Transient: nothing was written; the item is tried again later. */
  | { status: 'retry'; key: string; reason: TransientReason; detail: string };

export interface OutcomeCounts {
  rewrapped: number;
  skipped: number;
  failed: number;
  retry: number;
}

export function countOutcomes(outcomes: readonly ItemOutcome[]): OutcomeCounts {
  const c: OutcomeCounts = { rewrapped: 0, skipped: 0, failed: 0, retry: 0 };
  for (const o of outcomes) c[o.status]++;
  return c;
}
