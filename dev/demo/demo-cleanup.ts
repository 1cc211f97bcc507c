/** Removes what the demo created: its ledger/data schema and its Redis keys (nothing else). */
import type pg from 'pg';
import { Redis } from 'ioredis';

export async function dropDemoData(admin: pg.Pool, schema: string, redisUrl: string, prefix: string): Promise<void> {
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 2 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
