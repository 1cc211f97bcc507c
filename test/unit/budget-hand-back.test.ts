/**
 * When a worker hands a batch back instead of waiting on its campaign's KMS budget
 * (workers/budget-hand-back.ts): only when the batches already in hand keep the budget busy for
 * a second or more, never for a campaign's first batch in the process, and for a bounded delay.
 */
import { describe, expect, it } from 'vitest';
import { budgetTakenMs, HAND_BACK_TAKEN_MS, handBackDelayMs } from '../../workers/budget-hand-back.ts';

describe('budget hand-back', () => {
  it("a campaign's first batch in the process always runs, and an unlimited budget never hands back", () => {
    expect(budgetTakenMs({ ratePerSec: 1, callsPerBatch: 64, batchesInHand: 0, backlogMs: 60_000 })).toBe(0);
    expect(budgetTakenMs({ ratePerSec: 0, callsPerBatch: 64, batchesInHand: 3, backlogMs: 0 })).toBe(0);
  });

  it('the batches in hand take the budget for as long as their calls in flight need at its rate, or the backlog, whichever is longer', () => {
    expect(budgetTakenMs({ ratePerSec: 4, callsPerBatch: 8, batchesInHand: 1, backlogMs: 0 })).toBe(2_000);
    expect(budgetTakenMs({ ratePerSec: 200, callsPerBatch: 8, batchesInHand: 1, backlogMs: 0 })).toBe(40);
    expect(budgetTakenMs({ ratePerSec: 200, callsPerBatch: 8, batchesInHand: 1, backlogMs: 3_000 })).toBe(3_000);
  });

  it('hands back only from a second of budget taken, for half of it at most (5 s at most), jittered', () => {
    expect(handBackDelayMs(HAND_BACK_TAKEN_MS - 1)).toBeUndefined();
    expect(handBackDelayMs(2_000, () => 0)).toBe(500);
    expect(handBackDelayMs(2_000, () => 1)).toBe(1_000);
    expect(handBackDelayMs(600_000, () => 1)).toBe(5_000);
  });
});
