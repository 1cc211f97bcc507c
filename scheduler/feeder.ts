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

/** BullMQ: a lower number is served first. Incidents go ahead of routine rotation. */
export function jobPriority(c: Campaign): number {
  return c.kind === 'incident' ? 1 : Math.max(2, 100 - c.priority);
}

export async function feed(pool: pg.Pool, queue: Queue<BatchJobData>, c: Campaign, window: number): Promise<number> {
  const inFlight = await countInFlight(pool, c.id);
  if (inFlight >= window) return 0;
  const room = window - inFlight - (await finishedButInRedis(pool, queue, c.id));
  if (room <= 0) return 0;
  const batches = await nextPendingBatches(pool, c.id, room);
  if (batches.length === 0) return 0;
  // Mark first: a crash between the two leaves batches 'enqueued' but absent, which the
  // reconciler repairs; the other order could leave a job the ledger does not know is out.
  await markEnqueued(pool, c.id, batches.map((b) => b.batchNo));
  await queue.addBulk(
    batches.map((b) => ({
      name: 'batch',
      data: { campaignId: c.id, batchNo: b.batchNo },
      opts: { jobId: batchJobId(c.id, b.batchNo), priority: jobPriority(c) },
    })),
  );
  return batches.length;
}

/**
 * Jobs of this campaign that Redis still holds although the ledger no longer counts their batch
 * in flight: a worker commits a batch (done) a moment before BullMQ removes its job, and a job
 * recovered from a dead worker may wait for a batch that is already done. They count against the
 * window, or Redis would briefly hold more than `window` of the campaign's jobs.
 * Read after countInFlight: a batch finishing in between is counted twice, never missed.
 * Cheap: Redis only ever holds the bounded windows, so these id lists are short.
 */
async function finishedButInRedis(pool: pg.Pool, queue: Queue<BatchJobData>, campaignId: string): Promise<number> {
  const mark = `${campaignId}-b`;
  const ids = await queue.getRanges(['active', 'waiting', 'paused', 'prioritized', 'delayed'], 0, -1);
  const batchNos = ids.filter((id) => id.startsWith(mark)).map((id) => Number(id.slice(mark.length)));
  return countNotInFlight(pool, campaignId, batchNos);
}

/** Re-adds enqueued, unfinished batches whose job Redis lost. Returns how many were re-added. */
export async function reconcile(pool: pg.Pool, queue: Queue<BatchJobData>, c: Campaign, graceMs: number): Promise<number> {
  const batches = await listEnqueuedUnfinished(pool, c.id, { enqueuedBefore: new Date(Date.now() - graceMs) });
  let readded = 0;
  for (const b of batches) {
    const id = batchJobId(c.id, b.batchNo);
    const state = await queue.getJobState(id);
    if (state !== 'unknown' && state !== 'completed' && state !== 'failed') continue;
    if (state !== 'unknown') await (await queue.getJob(id))?.remove().catch(() => undefined);
    await queue.add('batch', { campaignId: c.id, batchNo: b.batchNo }, { jobId: id, priority: jobPriority(c) });
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
