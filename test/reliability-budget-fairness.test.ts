/**
 * Issue 20, point a: a worker does not hold a slot waiting on one campaign's KMS budget while
 * another campaign's job could run. One worker process with two job slots; campaign "slow" has a
 * budget of its own (a local keyring: the budget is per campaign) of 4 calls a second, campaign
 * "fast" none. Jobs interleave by rank (scheduler/feeder.ts), so after the first batch of each a
 * slot would take slow's second batch and both slots would then wait on slow's budget for
 * ~25 s while fast's batches waited in Redis. Instead a batch whose budget the batches in hand
 * already take for a second or more goes back to BullMQ's delayed set before it is claimed
 * (workers/budget-hand-back.ts): fast completes while slow has committed less than half its rows,
 * slow still moves at its budget, completes, and nothing counts as a failure (the campaign stays
 * healthy). Then the usual proof for both tables: every row unwraps under the new KEK with
 * independent code, the ledger's counts equal the table, and no row was written twice.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { unwrapAll, type RowKek } from '../dev/reference/row-client.ts';
import { inventoryByKek } from '../src/ledger/index.ts';
import type { CampaignProgress } from '../src/ledger/types.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { rowSource, rowsWrittenTwice, rowTable } from './support/row-fixture.ts';
import { recordFigure, secondsSince } from './support/reliability-figures.ts';

const SLOW_ROWS = 200;
const SLOW_RPS = 4;
const FAST_ROWS = 2_000;
const k1: RowKek = { id: 'k', version: '1', material: randomBytes(32) };
const k2: RowKek = { id: 'k', version: '2', material: randomBytes(32) };

let pipe: Pipeline;
const deks = new Map<string, Map<string, Buffer>>();

beforeAll(async () => {
  // debug: the worker's hand-back lines are the evidence counted below.
  pipe = await startPipeline({ label: 'budgetfair', workers: 1, env: { REWRAP_WORKER_JOBS: '2', LOG_LEVEL: 'debug' } });
  deks.set('slow', await rowTable(pipe.db.pool, 'slow', SLOW_ROWS, k1));
  deks.set('fast', await rowTable(pipe.db.pool, 'fast', FAST_ROWS, k1));
}, 300_000);

afterAll(async () => {
  await pipe?.stop();
});

describe('budget fairness (issue 20, point a)', () => {
  it('a slot does not wait on a campaign budget taken by the batches in hand: the other campaign completes first, nothing fails, both complete', async () => {
    const keyringFile = await pipe.keyringFile([k1, k2]);
    const t0 = Date.now();
    const slow = await pipe.create({
      name: 'slow',
      sources: [rowSource('slow')],
      provider: { type: 'local', keyringFile },
      from: 'k@1',
      to: 'k@2',
      // 8 calls waiting on 4/s: the batch in hand alone takes the budget for 2 s.
      options: { batchSize: 50, concurrency: 8, kmsRequestsPerSecond: SLOW_RPS },
    });
    const fast = await pipe.create({
      name: 'fast',
      sources: [rowSource('fast')],
      provider: { type: 'local', keyringFile },
      from: 'k@1',
      to: 'k@2',
      options: { batchSize: 100, concurrency: 8 },
    });

    const healthSeen = new Set<string>();
    await pipe.waitFor(fast.id, 'completed', (p) => p.state === 'completed', 120_000);
    const fastSeconds = secondsSince(t0);
    const slowAtFastDone: CampaignProgress = await pipe.progress(slow.id);
    healthSeen.add(slowAtFastDone.health.status);
    console.log(`budget-fairness: fast completed after ${fastSeconds} s; slow then at ${slowAtFastDone.rewrapped} of ${SLOW_ROWS} rows (${slowAtFastDone.state}, ${slowAtFastDone.health.status})`);
    /* Served by a slot that waited on slow's budget, fast would have finished after most of slow. */
    expect(slowAtFastDone.rewrapped, "fast's batches waited behind slow's budget").toBeLessThan(SLOW_ROWS / 2);
    expect(slowAtFastDone.state).toBe('running');

    const done = await pipe.waitFor(
      slow.id,
      'completed',
      (p) => {
        healthSeen.add(p.health.status);
        return p.state === 'completed';
      },
      180_000,
    );
    const slowSeconds = secondsSince(t0);
    /* A handed-back batch is no failure and no retry: the campaign never showed degraded. */
    expect([...healthSeen]).toEqual(['ok']);
    expect(done).toMatchObject({ planned: SLOW_ROWS, rewrapped: SLOW_ROWS, failed: 0 });
    expect(await pipe.progress(fast.id)).toMatchObject({ planned: FAST_ROWS, rewrapped: FAST_ROWS, failed: 0 });
    /* Still at its budget: a batch comes back before the backlog of the ones in hand has drained (half of it at most). */
    expect(slowSeconds).toBeLessThan((2 * SLOW_ROWS) / SLOW_RPS);
    const handedBack = pipe.logs().split('\n').filter((l) => l.includes('batch handed back')).length;
    console.log(`budget-fairness: slow completed after ${slowSeconds} s (budget alone: ${SLOW_ROWS / SLOW_RPS} s); ${handedBack} hand-backs`);
    expect(handedBack).toBeGreaterThan(0);

    // Proof, per table: every row under k@2 (independent unwrap), ledger = table, written once.
    let lost = 0;
    let duplicated = 0;
    for (const [table, d] of deks) {
      const rows = await unwrapAll(pipe.db.pool, table, [k2]);
      for (const [id, row] of rows) if (!row.dek.equals(d.get(id)!)) expect.fail(`${table} row ${id}: wrong DEK`);
      lost += d.size - rows.size;
      duplicated += (await rowsWrittenTwice(pipe.db.pool, table)).length;
    }
    expect(lost).toBe(0);
    expect(duplicated).toBe(0);
    const inv = await inventoryByKek(pipe.db.pool);
    expect(inv.filter((r) => r.kekId === 'k' && r.kekVersion === '2').reduce((a, r) => a + r.items, 0)).toBe(SLOW_ROWS + FAST_ROWS);

    recordFigure({
      scenario: 'Budget fairness (hand-back)',
      items: SLOW_ROWS + FAST_ROWS,
      faults: `1 worker x 2 slots; a campaign held to ${SLOW_RPS} KMS calls/s beside an unlimited one: ${handedBack} batches handed back; the unlimited one completed after ${fastSeconds} s with the slow one at ${slowAtFastDone.rewrapped} of ${SLOW_ROWS} rows, which completed after ${slowSeconds} s`,
      lost,
      duplicatedWrites: duplicated,
      detectSeconds: null,
      recoverSeconds: null,
      wallSeconds: secondsSince(t0),
      handedBack,
      fastCompletedSeconds: fastSeconds,
      slowCompletedSeconds: slowSeconds,
    });
  }, 400_000);
});
