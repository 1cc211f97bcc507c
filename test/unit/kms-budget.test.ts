import { describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { KmsBudget } from '../../src/queue/kms-budget.ts';

/** A Redis whose budget script answers from a list: [reserved, waitMs]. */
function fakeRedis(answers: [number, number][], rate: string | null = null) {
  const calls: string[] = [];
  const redis = {
    async eval(_script: string, _keys: number, _key: string, _max: number, n: number, mode: string) {
      calls.push(`${mode}:${n}`);
      return answers.shift() ?? [1, 0];
    },
    async hget() {
      return rate;
    },
  };
  return { redis: redis as unknown as Redis, calls };
}

describe('KMS budget, client side (the bucket arithmetic runs in Redis)', () => {
  it('a budget of 0 is unlimited: no Redis call at all', async () => {
    const f = fakeRedis([]);
    const b = new KmsBudget(f.redis, 'k', 0);
    expect(b.unlimited).toBe(true);
    await b.take();
    await b.throttled();
    expect(f.calls).toEqual([]);
  });

  it('take asks again after the wait Redis names until a token is reserved, then waits for that token', async () => {
    const f = fakeRedis([
      [0, 5],
      [0, 5],
      [1, 10],
    ]);
    const started = performance.now();
    await new KmsBudget(f.redis, 'k', 100).take();
    expect(f.calls).toEqual(['take:1', 'take:1', 'take:1']);
    expect(performance.now() - started).toBeGreaterThanOrEqual(19);
  });

  it('a take aborted while it waits for its token stops waiting with the abort reason', async () => {
    const f = fakeRedis([[1, 60_000]]);
    const ac = new AbortController();
    const taking = new KmsBudget(f.redis, 'k', 100).take(ac.signal);
    setTimeout(() => ac.abort(new Error('shutting down')), 20); // once the 60 s wait has begun
    await expect(taking).rejects.toThrow('shutting down');
  });

  it('a take aborted before it starts asks nothing', async () => {
    const f = fakeRedis([]);
    await expect(new KmsBudget(f.redis, 'k', 100).take(AbortSignal.abort(new Error('stopped')))).rejects.toThrow('stopped');
    expect(f.calls).toEqual([]);
  });

  it('throttled reports to Redis with no token taken; state reads the shared rate (the maximum before any throttle)', async () => {
    const f = fakeRedis([]);
    await new KmsBudget(f.redis, 'k', 100).throttled();
    expect(f.calls).toEqual(['throttled:0']);
    expect(await new KmsBudget(fakeRedis([]).redis, 'k', 100).state()).toEqual({ ratePerSec: 100 });
    expect(await new KmsBudget(fakeRedis([], '50').redis, 'k', 100).state()).toEqual({ ratePerSec: 50 });
  });
});
