/**
 * The BullMQ priority of a batch job (scheduler/feeder.ts): incidents before routine work, a
 * routine campaign's own priority next, and within one level the job's rank in its campaign's
 * window, so that equal-priority campaigns interleave instead of being served one after another.
 */
import { describe, expect, it } from 'vitest';
import { jobPriority } from '../../scheduler/feeder.ts';
import type { Campaign } from '../../src/ledger/types.ts';

const campaign = (kind: 'routine' | 'incident', priority = 0) => ({ kind, priority }) as Campaign;
const WINDOW = 64;

/** BullMQ's order: by priority, then by the order jobs were added. */
function served(jobs: { campaign: string; priority: number }[]): string[] {
  return jobs
    .map((j, added) => ({ ...j, added }))
    .sort((a, b) => a.priority - b.priority || a.added - b.added)
    .map((j) => j.campaign);
}

describe('batch job priority', () => {
  it('campaigns of one priority fed one after another are served interleaved (no campaign starves)', () => {
    const jobs = ['a', 'b', 'c'].flatMap((name) => Array.from({ length: 3 }, (_, rank) => ({ campaign: name, priority: jobPriority(campaign('routine'), rank) })));
    expect(served(jobs)).toEqual(['a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c']);
  });

  it("a new campaign's first batch goes ahead of every job ranked behind another's first", () => {
    const old = Array.from({ length: WINDOW }, (_, rank) => ({ campaign: 'old', priority: jobPriority(campaign('routine'), rank) }));
    const order = served([...old, { campaign: 'new', priority: jobPriority(campaign('routine'), 0) }]);
    expect(order.indexOf('new')).toBe(1);
  });

  it('an incident goes ahead of any routine job, and a higher routine priority ahead of any rank of a lower one', () => {
    const lastRank = 10_000; // beyond any window: clamped, never reaching into the next level
    expect(jobPriority(campaign('incident'), lastRank)).toBeLessThan(jobPriority(campaign('routine', 1_000), 0));
    expect(jobPriority(campaign('routine', 5), lastRank)).toBeLessThan(jobPriority(campaign('routine', 4), 0));
  });

  it('stays within what BullMQ accepts (0 to 2^21) for any campaign priority', () => {
    for (const p of [-1_000_000, -1, 0, 1, 98, 1_000_000]) {
      for (const rank of [0, WINDOW - 1, 1e9]) {
        const v = jobPriority(campaign('routine', p), rank);
        expect(Number.isInteger(v) && v >= 0 && v <= 2 ** 21).toBe(true);
      }
    }
  });
});
