import { describe, expect, it } from 'vitest';
import type { RedisConnection } from '../../src/queue/redis-connection.ts';
import { KmsBudget } from '../../src/queue/kms-budget.ts';
import { blockSize, dueAt, firstDueFrom, nextRateEstimate, remaining, type TokenBlock } from '../../src/queue/kms-budget-blocks.ts';

type Reply = [granted: number, before1000: number, rate1000: number, waitMs: number];

/** A Redis whose budget script (a defined command) answers from a list. */
function fakeRedis(answers: Reply[], rate: string | null = null) {
  const calls: string[] = [];
  const redis = {
    defineCommand() {},
    async rewrapKmsBudget(_key: string, max: number, mode: string, n: number): Promise<Reply> {
      calls.push(`${mode}:${n}`);
      return answers.shift() ?? [n, 1000, max * 1000, 0];
    },
    async hget() {
      return rate;
    },
  };
  return { redis: redis as unknown as RedisConnection, calls };
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

  it('take asks again after the wait Redis names until a block is granted, then hands out its first token', async () => {
    const f = fakeRedis([
      [0, 0, 100_000, 5],
      [0, 0, 100_000, 5],
      [1, 1000, 100_000, 0],
    ]);
    const started = performance.now();
    await new KmsBudget(f.redis, 'k', 100).take();
    expect(f.calls).toEqual(['take:1', 'take:1', 'take:1']);
    expect(performance.now() - started).toBeGreaterThanOrEqual(9);
  });

  it('a take aborted while it waits for its token stops waiting with the abort reason', async () => {
    const f = fakeRedis([[1, -60_000_000, 1000, 0]]); // one token, due a minute from now
    const ac = new AbortController();
    const taking = new KmsBudget(f.redis, 'k', 1).take(ac.signal);
    setTimeout(() => ac.abort(new Error('shutting down')), 20);
    await expect(taking).rejects.toThrow('shutting down');
  });

  it('a take aborted before it starts asks nothing', async () => {
    const f = fakeRedis([]);
    await expect(new KmsBudget(f.redis, 'k', 100).take(AbortSignal.abort(new Error('stopped')))).rejects.toThrow('stopped');
    expect(f.calls).toEqual([]);
  });

  it('throttled reports to Redis with no token taken; state reads the shared rate (the maximum before any throttle)', async () => {
    const f = fakeRedis([[0, 0, 50_000, 0]]);
    await new KmsBudget(f.redis, 'k', 100).throttled();
    expect(f.calls).toEqual(['throttled:0']);
    expect(await new KmsBudget(fakeRedis([]).redis, 'k', 100).state()).toEqual({ ratePerSec: 100 });
    expect(await new KmsBudget(fakeRedis([], '50').redis, 'k', 100).state()).toEqual({ ratePerSec: 50 });
  });
});

describe('KMS budget blocks (pure arithmetic)', () => {
  const block = (o: Partial<TokenBlock> = {}): TokenBlock => ({ at: 1000, before: 0, spacingMs: 10, count: 5, next: 1, ...o });

  it('token k of a block is due (k - before) spacings after the grant, never before it', () => {
    expect(dueAt(block(), 1)).toBe(1010);
    expect(dueAt(block({ before: 2 }), 1)).toBe(1000); // tokens in the bucket: due at once
    expect(dueAt(block({ before: -3 }), 1)).toBe(1040); // reservations queued ahead of this block
  });

  it('firstDueFrom skips the tokens already past; remaining counts what is not handed out', () => {
    expect(firstDueFrom(block(), 900)).toBe(1);
    expect(firstDueFrom(block(), 1035)).toBe(4);
    expect(remaining(block({ next: 3 }))).toBe(3);
    expect(remaining(block({ next: 9 }))).toBe(0);
  });

  it('a block covers blockMs of the recent rate, capped by the budget; a new worker asks by demand; at least one token', () => {
    expect(blockSize({ recentRatePerSec: 1000, blockMs: 200, waiting: 0, budgetRatePerSec: 10_000 })).toBe(200);
    expect(blockSize({ recentRatePerSec: 50_000, blockMs: 200, waiting: 0, budgetRatePerSec: 10_000 })).toBe(2000);
    expect(blockSize({ recentRatePerSec: 0, blockMs: 200, waiting: 64, budgetRatePerSec: 10_000 })).toBe(64);
    expect(blockSize({ recentRatePerSec: 0, blockMs: 200, waiting: 0, budgetRatePerSec: 10_000 })).toBe(1);
    expect(blockSize({ recentRatePerSec: 1000, blockMs: 0, waiting: 9, budgetRatePerSec: 10_000 })).toBe(1);
  });

  it('the recent rate moves toward what was used, and waits for a measurable interval', () => {
    expect(nextRateEstimate(0, 1, 5, 1000)).toBeUndefined();
    const r = nextRateEstimate(0, 100, 1000, 1000)!;
    expect(r).toBeGreaterThan(60);
    expect(r).toBeLessThan(100);
  });
});
