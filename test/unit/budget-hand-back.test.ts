/**
 * When a worker hands a batch back instead of waiting on its campaign's KMS budget
 * (workers/budget-hand-back.ts): only when the batches already in hand are held back by the
 * budget, never for a campaign's first batch in the process, and for a bounded delay.
 */
import { describe, expect, it } from 'vitest';
import { budgetHoldsBack, handBackDecision, handBackDelayMs } from '../../workers/budget-hand-back.ts';
import type { CampaignSpec } from '../../src/core/campaign-spec.ts';

const spec = (kmsRequestsPerSecond: number, concurrency = 8) => ({ options: { kmsRequestsPerSecond, concurrency } }) as CampaignSpec;

describe('budget hand-back', () => {
  it("a campaign's first batch in the process always runs, and an unlimited budget never hands back", () => {
    expect(budgetHoldsBack({ ratePerSec: 1, callsPerBatch: 64, batchesInHand: 0, waiting: 64 })).toBe(false);
    expect(budgetHoldsBack({ ratePerSec: 0, callsPerBatch: 64, batchesInHand: 3, waiting: 64 })).toBe(false);
  });

  it('held back: half a batch of calls waits for tokens, or the calls in flight need a second of the budget', () => {
    expect(budgetHoldsBack({ ratePerSec: 200, callsPerBatch: 8, batchesInHand: 1, waiting: 4 })).toBe(true);
    expect(budgetHoldsBack({ ratePerSec: 200, callsPerBatch: 8, batchesInHand: 1, waiting: 1 })).toBe(false); // the provider sets the pace
    expect(budgetHoldsBack({ ratePerSec: 4, callsPerBatch: 8, batchesInHand: 1, waiting: 0 })).toBe(true);
  });

  it('the delay is about the backlog, from 250 ms to 5 s, jittered', () => {
    expect(handBackDelayMs(0, () => 0)).toBe(250);
    expect(handBackDelayMs(2_000, () => 0)).toBe(1_000);
    expect(handBackDelayMs(2_000, () => 1)).toBe(2_000);
    expect(handBackDelayMs(600_000, () => 1)).toBe(5_000);
  });

  it('decides from what the process sees of the budget, only while another job waits; batches taken together get a moment to show it', async () => {
    const use = { waiting: 8, used: 100, backlogMs: 400 };
    const res = { budgetUse: () => use };
    const others = async () => true;
    expect(await handBackDecision(res, 'c', spec(200), 1, others)).toBeGreaterThanOrEqual(250);
    expect(await handBackDecision(res, 'c', spec(200), 0, others)).toBeUndefined();
    expect(await handBackDecision(res, 'c', spec(0), 1, others)).toBeUndefined();
    // No other job waits for a slot: the batch runs, it takes up the budget between the others' calls.
    expect(await handBackDecision(res, 'c', spec(200), 1, async () => false)).toBeUndefined();
    // Nothing drawn yet: waits (bounded), then runs the batch if nothing waits.
    const t0 = performance.now();
    expect(await handBackDecision({ budgetUse: () => undefined }, 'c', spec(200), 1, others)).toBeUndefined();
    expect(performance.now() - t0).toBeLessThan(2_000);
  });
});
