/** A fresh BullMQ/Redis key prefix per test file; cleanup deletes only keys under it. */
import { Redis } from 'ioredis';
import { randomBytes } from 'node:crypto';
import { REDIS_URL } from './env.ts';

export interface TestRedis {
  redis: Redis;
  prefix: string;
  url: string;
  cleanup(): Promise<void>;
}

export async function freshRedisPrefix(label: string): Promise<TestRedis> {
  const prefix = `test-${label}-${randomBytes(4).toString('hex')}`;
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  return {
    redis,
    prefix,
    url: REDIS_URL,
    async cleanup() {
      await deleteByPattern(redis, `*${prefix}*`);
      redis.disconnect();
    },
  };
}

export async function deleteByPattern(redis: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== '0');
}
