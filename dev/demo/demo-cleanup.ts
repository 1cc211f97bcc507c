/** Removes what the demo created: its ledger/data schema and its Redis keys (nothing else). */
import type pg from 'pg';
import { createRedis, dataServers } from '../../src/queue/redis-connection.ts';

export async function dropDemoData(admin: pg.Pool, schema: string, redisUrl: string, prefix: string): Promise<void> {
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  const redis = createRedis(redisUrl, { maxRetriesPerRequest: 2 });
  redis.on('error', () => undefined); // a Redis already gone leaves nothing to remove
  try {
    // On a cluster the prefix's hash tag puts every key on one master; scan them all anyway.
    for (const server of await dataServers(redis)) {
      let cursor = '0';
      do {
        const [next, keys] = await server.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length) await server.unlink(...keys);
      } while (cursor !== '0');
    }
  } finally {
    redis.disconnect();
  }
}
