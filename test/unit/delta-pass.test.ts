import { describe, expect, it } from 'vitest';
import { DeltaPassRule, type DeltaPassLedger } from '../../scheduler/delta-pass.ts';

/** An in-memory ledger: batches still open, what the latest pass moved, and the campaign state. */
function fakeLedger(o: { open?: number; moved?: number; suspect?: number } = {}) {
  const log: string[] = [];
  let passes = 0;
  let nextBatch = 10;
  const state = { open: o.open ?? 0, moved: o.moved ?? 0, suspect: o.suspect ?? 0, running: true };
  const ledger: DeltaPassLedger = {
    async progress() {
      return { rewrapped: 5, skipped: 1, failed: 0, batches: { pending: state.open, enqueued: 0, leased: 0, done: 3 } as never };
    },
    async changesSince(_id, firstBatchNo) {
      log.push(`changes since ${firstBatchNo}`);
      return { moved: state.moved, suspectBatches: state.suspect };
    },
    async complete() {
      log.push('complete');
      return state.running;
    },
    async beginPass() {
      passes++;
      log.push(`pass ${passes}`);
      return { pass: passes, firstBatchNo: nextBatch++ };
    },
  };
  return { ledger, log, state, passes: () => passes };
}

const campaign = (deltaPasses: number, planDone = true) => ({ id: 'c1', planDone, deltaPasses });

describe('delta-pass and completion rule', () => {
  it('nothing is decided while batches were fed, the plan is unfinished, or batches are open', async () => {
    const f = fakeLedger({ open: 2 });
    const rule = new DeltaPassRule(f.ledger);
    expect(await rule.step(campaign(0), 1)).toEqual({ kind: 'busy' });
    expect(await rule.step(campaign(0, false), 0)).toEqual({ kind: 'busy' });
    expect(await rule.step(campaign(0), 0)).toEqual({ kind: 'busy' });
    expect(f.log).toEqual([]);
  });

  it('the first drain never completes: a delta pass looks once more; a clean pass this scheduler began completes', async () => {
    const f = fakeLedger();
    const rule = new DeltaPassRule(f.ledger);
    expect(await rule.step(campaign(0), 0)).toEqual({ kind: 'delta-pass', pass: 1 });
    expect(await rule.step(campaign(1), 0)).toEqual({ kind: 'completed', progress: expect.objectContaining({ rewrapped: 5 }) });
    expect(f.log).toEqual(['pass 1', 'changes since 10', 'complete']);
  });

  it('a pass that moved items, or whose batches may hide a move, is followed by another pass', async () => {
    const f = fakeLedger({ moved: 3 });
    const rule = new DeltaPassRule(f.ledger);
    await rule.step(campaign(0), 0);
    expect(await rule.step(campaign(1), 0)).toEqual({ kind: 'delta-pass', pass: 2 });
    f.state.moved = 0;
    f.state.suspect = 1;
    expect(await rule.step(campaign(2), 0)).toEqual({ kind: 'delta-pass', pass: 3 });
    f.state.suspect = 0;
    expect(await rule.step(campaign(3), 0)).toMatchObject({ kind: 'completed' });
  });

  it('a pass another scheduler began (or one from before a restart) does not count: one more pass', async () => {
    const f = fakeLedger();
    const rule = new DeltaPassRule(f.ledger);
    expect(await rule.step(campaign(4), 0)).toEqual({ kind: 'delta-pass', pass: 1 });
    expect(f.log).toEqual(['pass 1']);
  });

  it('a campaign that left running meanwhile is not completed (not-running)', async () => {
    const f = fakeLedger();
    const rule = new DeltaPassRule(f.ledger);
    await rule.step(campaign(0), 0);
    f.state.running = false;
    expect(await rule.step(campaign(1), 0)).toEqual({ kind: 'not-running' });
  });

  it('a clean pass completes only once beforeComplete (the noncurrent sweep) says it is done', async () => {
    const f = fakeLedger();
    const rule = new DeltaPassRule(f.ledger);
    await rule.step(campaign(0), 0);
    let pages = 2;
    const sweep = async () => --pages === 0;
    expect(await rule.step(campaign(1), 0, sweep)).toEqual({ kind: 'finishing' });
    expect(await rule.step(campaign(1), 0, sweep)).toMatchObject({ kind: 'completed' });
  });
});
