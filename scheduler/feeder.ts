/**
 * Keeps at most `window` batches of a campaign in Redis (invariant 4), re-adds those the ledger
 * says are unfinished but Redis no longer holds (Redis restarted or flushed), and takes the jobs
 * of paused or cancelled campaigns back out.
 */
import type { Queue } from 'bullmq';
import { countInFlight, countNotInFlight, listEnqueuedUnfinished, markEnqueued, markPending, nextPendingBatches } from '../src/ledger/index.ts';
import type { Campaign } from '../src/ledger/types.ts';
import type pg from 'pg';
import { batchJobId, type BatchJobData } from '../src/queue/batch-queue.ts';

/*
 * Fairness between campaigns of one priority (issue 20, point a). BullMQ serves jobs of equal
 * priority in the order they were added, so with a window of 64 batches per campaign the campaign
 * fed first had its whole window ahead of everyone else's: every worker slot took its batches, and
 * when that campaign was held to a KMS budget of its own the slots waited on that budget while
 * the other campaigns' jobs waited in Redis. (BullMQ's group round robin is BullMQ Pro only.)
 * So a job's priority carries its rank in its campaign's window: the number of that campaign's
 * jobs Redis held when it was added (active ones included). Workers take every campaign's rank-0
 * job, then every rank-1 job, and so on: the campaigns' jobs interleave whatever order they were
 * fed in, a campaign that holds many slots gets its next jobs ranked behind those of campaigns
 * that hold few, and a new campaign's first batch is served after at most the first job of each
 * other campaign (a campaign has one rank-0 job at most: it is added only when Redis holds none of
 * its jobs). A rank is below the window and clamped below RANK_SPAN: it never reaches into the
 * next priority level. Handed-back jobs (workers/budget-hand-back.ts) keep theirs.
 */
const RANK_SPAN = 4096;
/** BullMQ refuses priorities above 2^21: 500 levels of RANK_SPAN stay below it. */
const LOWEST_LEVEL = 500;

/** BullMQ: a lower number is served first. Incidents go ahead of routine rotation; within a level, by rank. */
export function jobPriority(c: Campaign, rank = 0): number {
  const level = c.kind === 'incident' ? 1 : Math.min(LOWEST_LEVEL, Math.max(2, 100 - c.priority));
  return level * RANK_SPAN + Math.min(Math.max(0, rank), RANK_SPAN - 1);
}

export async function feed(pool: pg.Pool, queue: Queue<BatchJobData>, c: Campaign, window: number): Promise<number> {
  const inFlight = await countInFlight(pool, c.id);
  if (inFlight >= window) return 0;
  const held = await jobsInRedis(queue, c.id);
  const room = window - inFlight - (await countNotInFlight(pool, c.id, held));
  if (room <= 0) return 0;
  const batches = await nextPendingBatches(pool, c.id, room);
  if (batches.length === 0) return 0;
  // Mark first: a crash between the two leaves batches 'enqueued' but absent, which the
  // reconciler repairs; the other order could leave a job the ledger does not know is out.
  await markEnqueued(pool, c.id, batches.map((b) => b.batchNo));
  await queue.addBulk(
    batches.map((b, i) => ({
      name: 'batch',
      data: { campaignId: c.id, batchNo: b.batchNo },
      opts: { jobId: batchJobId(c.id, b.batchNo), priority: jobPriority(c, held.length + i) },
    })),
  );
  return batches.length;
}

/**
 * The batch numbers of this campaign's jobs that Redis holds (waiting, active, delayed): their
 * count is the next job's rank. Some of them the ledger may no longer count in flight (a worker
 * commits a batch a moment before BullMQ removes its job; a job recovered from a dead worker may
 * wait for a batch that is already done): those count against the window too (countNotInFlight,
 * read after countInFlight: a batch finishing in between is counted twice, never missed), or Redis
 * would briefly hold more than `window` of the campaign's jobs.
 * Cheap: Redis only ever holds the bounded windows, so these id lists are short.
 */
async function jobsInRedis(queue: Queue<BatchJobData>, campaignId: string): Promise<number[]> {
  const mark = `${campaignId}-b`;
  const ids = await queue.getRanges(['active', 'waiting', 'paused', 'prioritized', 'delayed'], 0, -1);
  return ids.filter((id) => id.startsWith(mark)).map((id) => Number(id.slice(mark.length)));
}

/** Re-adds enqueued, unfinished batches whose job Redis lost. Returns how many were re-added. */
export async function reconcile(pool: pg.Pool, queue: Queue<BatchJobData>, c: Campaign, graceMs: number): Promise<number> {
  const batches = await listEnqueuedUnfinished(pool, c.id, { enqueuedBefore: new Date(Date.now() - graceMs) });
  let readded = 0;
  const held = batches.length > 0 ? (await jobsInRedis(queue, c.id)).length : 0;
  for (const b of batches) {
    const id = batchJobId(c.id, b.batchNo);
    const state = await queue.getJobState(id);
    if (state !== 'unknown' && state !== 'completed' && state !== 'failed') continue;
    if (state !== 'unknown') await (await queue.getJob(id))?.remove().catch(() => undefined);
    await queue.add('batch', { campaignId: c.id, batchNo: b.batchNo }, { jobId: id, priority: jobPriority(c, held + readded) });
    readded++;
  }
  return readded;
}

/** Removes the waiting jobs of a campaign that is not running and puts their batches back to pending. */
export async function withdraw(pool: pg.Pool, queue: Queue<BatchJobData>, c: Campaign): Promise<number> {
  const batches = await listEnqueuedUnfinished(pool, c.id);
  const back: number[] = [];
  for (const b of batches) {
    const job = await queue.getJob(batchJobId(c.id, b.batchNo));
    if (job) {
      const state = await job.getState();
      if (state === 'active') continue; // its worker sees the state change at its next lease renewal
      // Refused when a worker took it after getState (it is locked then): that worker finishes it.
      if (!(await job.remove().then(() => true, () => false))) continue;
    }
    back.push(b.batchNo);
  }
  if (back.length) await markPending(pool, c.id, back);
  return back.length;
}
