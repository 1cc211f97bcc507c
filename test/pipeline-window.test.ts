/**
 * Invariant 4: Redis holds only a bounded window of batch ids. A campaign over 1,000,000 Postgres
 * rows is planned into the ledger while Redis (a PRIVATE redis-server, so INFO memory is ours
 * alone) never holds more than REWRAP_WINDOW_BATCHES batch jobs, and its used_memory (and the
 * peak Redis itself records) stays under 64 MB; then a worker drains batches for a while and the
 * scheduler keeps refilling the window without ever going over it.
 * The rows carry a constant fake 60-byte wrapped key: nothing needs to decrypt them (the worker
 * records each as a permanent failure, which is all the window needs to see batches finish).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import type { Queue } from 'bullmq';
import { createEnvelopeTable } from '../src/stores/pg-table-schema.ts';
import { countInFlight } from '../src/ledger/index.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { startPrivateRedis, type PrivateRedis } from '../dev/services/private-redis.ts';
import { rowSource } from './support/row-fixture.ts';
import { batchQueue, jobsInRedis, redisMemory } from './support/queue-jobs.ts';

const ROWS = 1_000_000;
const WINDOW = 20;
const MAX_REDIS_BYTES = 64 * 1024 * 1024;
const v1 = { id: 'k', version: '1', material: randomBytes(32) };
const v2 = { id: 'k', version: '2', material: randomBytes(32) };

let redis: PrivateRedis;
let pipe: Pipeline;
let q: Queue;

/** Samples the number of batch jobs in Redis about every millisecond, until stopped. */
function sampleJobs(): { stop(): Promise<{ max: number; samples: number }> } {
  let running = true;
  let max = 0;
  let samples = 0;
  let failure: unknown;
  const loop = (async () => {
    while (running) {
      max = Math.max(max, await jobsInRedis(q));
      samples++;
      await new Promise((r) => setTimeout(r, 1)); // ~1 sample per ms, without starving the pipeline of CPU
    }
  })().catch((err: unknown) => {
    failure = err;
  });
  return {
    async stop() {
      running = false;
      await loop;
      if (failure) throw new Error('sampling the queue failed', { cause: failure });
      return { max, samples };
    },
  };
}

let sampler: ReturnType<typeof sampleJobs> | undefined;

beforeAll(async () => {
  redis = await startPrivateRedis();
  pipe = await startPipeline({ label: 'window', workers: 0, redisUrl: redis.url, env: { REWRAP_WINDOW_BATCHES: String(WINDOW) } });
  q = batchQueue(redis.client, pipe.prefix);
  await createEnvelopeTable(pipe.db.pool, 'big');
  const t0 = Date.now();
  await pipe.db.pool.query(
    `INSERT INTO big (id, wrapped_dek, kek_id, kek_version) SELECT g, $1::bytea, 'k', '1' FROM generate_series(1, $2::int) g`,
    [randomBytes(60), ROWS],
  );
  await pipe.db.pool.query('ANALYZE big');
  console.log(`window: inserted ${ROWS} rows in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}, 180_000);

afterAll(async () => {
  await sampler?.stop().catch(() => undefined);
  await q?.close();
  await pipe?.stop();
  await redis?.stop();
});

describe('bounded window in Redis (invariant 4)', () => {
  it(`plans 1,000,000 rows while Redis never holds more than ${WINDOW} batch jobs and stays under 64 MB`, async () => {
    const keyringFile = await pipe.keyringFile([v1, v2]);
    sampler = sampleJobs();
    const t0 = Date.now();
    const c = await pipe.create({
      name: 'a million rows',
      sources: [rowSource('big')],
      provider: { type: 'local', keyringFile },
      from: 'k@1',
      to: 'k@2',
      options: { batchSize: 200 },
    });
    const planned = await pipe.waitFor(c.id, 'planned', (p) => p.planDone, 240_000);
    const planSeconds = (Date.now() - t0) / 1000;
    console.log(`window: planned ${planned.planned} items in ${planSeconds.toFixed(1)} s (${Math.round(planned.planned / planSeconds)} items/s)`);
    expect(planned.planned).toBe(ROWS);
    expect(planned.batches.pending + planned.batches.enqueued).toBe(ROWS / 200);
    // Fed up to the window, no further: nothing is consuming yet.
    expect(planned.batches.enqueued).toBe(WINDOW);
    expect(await countInFlight(pipe.db.pool, c.id)).toBe(WINDOW);
    expect(await jobsInRedis(q)).toBe(WINDOW);
    const afterPlan = await redisMemory(redis.client);

    // A worker drains batches; the scheduler refills the window as they finish.
    await pipe.startWorker();
    const drained = await pipe.waitFor(c.id, `${4 * WINDOW} batches done`, (p) => p.batches.done >= 4 * WINDOW, 120_000);
    const { max, samples } = await sampler.stop();
    sampler = undefined;
    const mem = await redisMemory(redis.client);
    console.log(
      `window: ${samples} samples of the queue, at most ${max} batch jobs in Redis; used_memory ${(afterPlan.used / 2 ** 20).toFixed(1)} MiB after planning, peak ${(mem.peak / 2 ** 20).toFixed(1)} MiB`,
    );
    expect(drained.failed).toBeGreaterThanOrEqual(4 * WINDOW * 200); // fake keys: permanent failures, recorded
    expect(drained.batches.done + drained.batches.enqueued + drained.batches.pending).toBe(ROWS / 200);
    expect(samples).toBeGreaterThan(50);
    expect(max).toBeLessThanOrEqual(WINDOW);
    expect(max).toBe(WINDOW); // the window was actually used
    expect(afterPlan.used).toBeLessThan(MAX_REDIS_BYTES);
    expect(mem.used).toBeLessThan(MAX_REDIS_BYTES);
    expect(mem.peak).toBeLessThan(MAX_REDIS_BYTES);
  }, 420_000);
});
