/**
 * BullMQ wiring. A job is `{ campaignId, batchNo }` and nothing else (invariant 5: no key
 * material, and no item lists: invariant 4 keeps Redis a bounded window of ids).
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { ConfigError } from '../core/errors.ts';

export const BATCH_QUEUE = 'batches';

export interface BatchJobData {
  campaignId: string;
  batchNo: number;
}

/** Job ids never contain ':' (BullMQ uses it as its key separator). */
export function batchJobId(campaignId: string, batchNo: number): string {
  return `${campaignId}-b${batchNo}`;
}

export function createRedis(url: string): Redis {
  // BullMQ workers need maxRetriesPerRequest: null so blocking calls survive reconnects.
  return new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true });
}

export function createBatchQueue(connection: Redis, prefix: string): Queue<BatchJobData> {
  return new Queue<BatchJobData>(BATCH_QUEUE, {
    connection,
    prefix,
    defaultJobOptions: {
      removeOnComplete: true,
      removeOnFail: true,
      attempts: 50,
      backoff: { type: 'capped-exponential' },
    },
  });
}

/** Backoff for batches with transient failures: exponential with jitter, capped at 30 s. */
export function batchBackoffMs(attemptsMade: number): number {
  const base = Math.min(30_000, 500 * 2 ** Math.min(attemptsMade, 10));
  return Math.round(base / 2 + Math.random() * (base / 2));
}

/**
 * BullMQ needs `noeviction`: an evicted job key silently loses or duplicates work.
 * Refuse to start otherwise (a managed Redis that hides CONFIG: we cannot check; we say so).
 */
export async function assertNoEviction(redis: Redis): Promise<void> {
  let policy: string | undefined;
  try {
    const r = (await redis.config('GET', 'maxmemory-policy')) as string[];
    policy = r[1];
  } catch {
    const info = await redis.info('memory');
    policy = /maxmemory_policy:(\S+)/.exec(info)?.[1];
  }
  if (policy === undefined) return;
  if (policy !== 'noeviction') {
    throw new ConfigError(
      `Redis maxmemory-policy is "${policy}"; rewrap (BullMQ) needs "noeviction", or Redis may drop queue keys under memory pressure. ` +
        'Fix: redis-cli CONFIG SET maxmemory-policy noeviction (and set it in redis.conf).',
    );
  }
}
