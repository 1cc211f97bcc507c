/**
 * Invariant 4: losing Redis loses no progress. A campaign of Postgres rows runs on a PRIVATE
 * redis-server (never the shared one) and Redis is emptied with FLUSHALL twice in the middle of
 * it: queued jobs, worker locks and the KMS budget all vanish. The campaign still completes, its
 * ledger counts equal an independent scan of the table exactly, nothing failed, every row
 * unwraps under the new KEK to its original DEK, and no row was written twice.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import type { RowKek } from '../dev/reference/row-client.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { startPrivateRedis, type PrivateRedis } from '../dev/services/private-redis.ts';
import { expectEveryRowMovedOnce, rowSource, rowsAt, rowsWrittenTwice, rowTable } from './support/row-fixture.ts';
import { batchQueue, jobsInRedis } from './support/queue-jobs.ts';
import { LeakGuard } from './support/leak-guard.ts';
import { recordFigure, secondsSince } from './support/reliability-figures.ts';

const ROWS = 6_000;
const v1: RowKek = { id: 'k', version: '1', material: randomBytes(32) };
const v2: RowKek = { id: 'k', version: '2', material: randomBytes(32) };

let redis: PrivateRedis;
let pipe: Pipeline;
let deks: Map<string, Buffer>;

beforeAll(async () => {
  redis = await startPrivateRedis();
  pipe = await startPipeline({ label: 'redisloss', workers: 2, redisUrl: redis.url });
  deks = await rowTable(pipe.db.pool, 'secrets', ROWS, v1);
}, 120_000);

afterAll(async () => {
  await pipe?.stop();
  await redis?.stop();
});

describe('Redis loss in the middle of a campaign (invariant 4)', () => {
  it('FLUSHALL twice mid-campaign: the campaign completes with exact counts and nothing failed', async () => {
    const keyringFile = await pipe.keyringFile([v1, v2]);
    const c = await pipe.create({
      name: 'redis loss',
      sources: [rowSource('secrets')],
      provider: { type: 'local', keyringFile },
      from: 'k@1',
      to: 'k@2',
      // The shared budget (kept in Redis too) paces the campaign so the flushes land mid-way.
      options: { batchSize: 50, concurrency: 8, kmsRequestsPerSecond: 400 },
    });
    const q = batchQueue(redis.client, pipe.prefix);
    const t0 = Date.now();
    const recover: number[] = [];
    try {
      for (const atLeast of [ROWS / 6, ROWS / 2]) {
        await pipe.waitFor(c.id, `past ${atLeast} items`, (p) => p.rewrapped >= atLeast, 120_000);
        expect(await jobsInRedis(q)).toBeGreaterThan(0); // there was something to lose
        const before = await pipe.progress(c.id);
        expect(before.state).toBe('running');
        expect(before.remaining).toBeGreaterThan(0);
        await redis.client.flushall();
        const flushedAt = Date.now();
        // Progress resumes once the scheduler re-enqueues what Redis lost.
        await pipe.waitFor(c.id, 'moving again after FLUSHALL', (p) => p.rewrapped > before.rewrapped + 100 || p.state === 'completed', 120_000);
        recover.push(secondsSince(flushedAt));
      }
      const p = await pipe.waitFor(c.id, 'completed', (x) => x.state === 'completed', 180_000);

      // Independent scan of the store and the ledger agree exactly; effects exactly once (a
      // re-delivered batch read its rows at the target and wrote nothing).
      await expectEveryRowMovedOnce(pipe.db.pool, 'secrets', deks, v2, v1.version, p);
      expect(pipe.scheduler.lines.some((l) => l.includes('batches missing from Redis re-enqueued'))).toBe(true);
      recordFigure({
        scenario: 'Redis FLUSHALL x2',
        items: ROWS,
        faults: 'FLUSHALL of the (private) Redis twice mid-campaign: jobs, locks and budget gone',
        lost: ROWS - (await rowsAt(pipe.db.pool, 'secrets', 'k', '2')),
        duplicatedWrites: (await rowsWrittenTwice(pipe.db.pool, 'secrets')).length,
        detectSeconds: null,
        recoverSeconds: Math.max(...recover),
        wallSeconds: secondsSince(t0),
      });
    } finally {
      await q.close();
    }
  }, 300_000);

  it('no DEK or KEK bytes in any process log (invariant 5)', () => {
    const guard = new LeakGuard();
    guard.secret(v1.material, v2.material, ...deks.values());
    guard.text(pipe.logs());
    expect(guard.findLeaks()).toEqual([]);
  });
});
