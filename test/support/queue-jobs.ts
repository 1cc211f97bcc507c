/**
 * What the batch queue really holds in Redis, read from BullMQ's own keys (not from the ledger):
 * for the window test (how many batch jobs at once) and the cancel test (none of a campaign).
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { BATCH_QUEUE } from '../../src/queue/batch-queue.ts';

/** A read-only view of the pipeline's batch queue (one connection, closed by `close`). */
export function batchQueue(redis: Redis, prefix: string): Queue {
  const q = new Queue(BATCH_QUEUE, { connection: redis, prefix });
  q.on('error', () => undefined); // a flushed or restarted Redis must not crash the test process
  return q;
}

/** Jobs in any state BullMQ keeps (waiting, prioritized, active, delayed, paused, ...). */
export async function jobsInRedis(q: Queue): Promise<number> {
  const counts = await q.getJobCounts();
  return Object.values(counts).reduce((a, n) => a + n, 0);
}

/**
 * Every trace of a campaign's batch jobs under the prefix: job hashes (and their lock/log keys),
 * and ids in BullMQ's lists and sorted sets. Job ids are `<campaignId>-b<n>`.
 */
export async function campaignJobTraces(redis: Redis, prefix: string, campaignId: string): Promise<string[]> {
  const base = `${prefix}:${BATCH_QUEUE}`;
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${base}:${campaignId}-b*`, 'COUNT', 1000);
    cursor = next;
    found.push(...keys);
  } while (cursor !== '0');
  for (const list of ['wait', 'active', 'paused']) {
    for (const id of await redis.lrange(`${base}:${list}`, 0, -1)) if (id.startsWith(`${campaignId}-b`)) found.push(`${list}:${id}`);
  }
  for (const set of ['prioritized', 'delayed', 'completed', 'failed', 'waiting-children']) {
    for (const id of await redis.zrange(`${base}:${set}`, 0, -1)) if (id.startsWith(`${campaignId}-b`)) found.push(`${set}:${id}`);
  }
  return found;
}

/** `INFO memory` of a (private) Redis: used_memory and its peak, in bytes. */
export async function redisMemory(redis: Redis): Promise<{ used: number; peak: number }> {
  const info = await redis.info('memory');
  const field = (name: string) => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(info)?.[1] ?? NaN);
  return { used: field('used_memory'), peak: field('used_memory_peak') };
}
