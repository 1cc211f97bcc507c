/**
 * Redis Cluster (issue 18, point 4). A real cluster of 3 masters and 3 replicas (redis-server
 * --cluster-enabled yes on loopback ports, no container) carries a campaign of Postgres rows:
 * every process (scheduler, 2 workers) reaches it through `REDIS_URL=redis+cluster://...`, so
 * the queue, the workers' blocking connections and the shared KMS budget all use ioredis' Cluster
 * client. Mid-campaign the master owning the queue's slot is SIGKILLed; its replica takes over
 * and the campaign completes with nothing lost: exact ledger counts, every row unwraps under the
 * new KEK to its original DEK, no row written twice (invariants 1, 2 and 4).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import type { RowKek } from '../dev/reference/row-client.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { startRedisCluster, type LocalRedisCluster } from './support/redis-cluster.ts';
import { expectEveryRowMovedOnce, rowSource, rowTable } from './support/row-fixture.ts';
import { LeakGuard } from './support/leak-guard.ts';

const ROWS = 4_000;
const v1: RowKek = { id: 'k', version: '1', material: randomBytes(32) };
const v2: RowKek = { id: 'k', version: '2', material: randomBytes(32) };

let cluster: LocalRedisCluster;
let pipe: Pipeline;
let deks: Map<string, Buffer>;

beforeAll(async () => {
  cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1, nodeTimeoutMs: 1000 });
  pipe = await startPipeline({ label: 'rcluster', workers: 2, redisUrl: cluster.url });
  deks = await rowTable(pipe.db.pool, 'secrets', ROWS, v1);
}, 180_000);

afterAll(async () => {
  await cluster?.stop(); // first: the pipeline's cleanup then finds no cluster and skips its keys
  await pipe?.stop();
});

/** Every key under the prefix, on every live master. */
async function keysUnderPrefix(prefix: string): Promise<string[]> {
  const found: string[] = [];
  for (const n of cluster.nodes) {
    if (n.child.exitCode !== null || n.child.signalCode !== null) continue;
    const role = String(await cluster.command(n.port, 'ROLE').then((r) => (r as unknown[])[0]));
    if (role !== 'master') continue;
    let cursor = '0';
    do {
      const [next, keys] = (await cluster.command(n.port, 'SCAN', cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)) as [string, string[]];
      cursor = next;
      found.push(...keys);
    } while (cursor !== '0');
  }
  return found;
}

describe('Redis Cluster: 3 masters + 3 replicas, the queue master killed mid-campaign', () => {
  it('every key a run creates is in the hash-tag slot; after the failover the campaign completes with nothing lost (invariants 1, 2, 4)', async () => {
    const keyringFile = await pipe.keyringFile([v1, v2]);
    const seed = cluster.nodes[0]!.port;
    const slot = Number(await cluster.command(seed, 'CLUSTER', 'KEYSLOT', pipe.prefix));
    const c = await pipe.create({
      name: 'redis cluster',
      sources: [rowSource('secrets')],
      provider: { type: 'local', keyringFile },
      from: 'k@1',
      to: 'k@2',
      // The shared budget (a key in the cluster too) paces the campaign so the kill lands mid-way.
      options: { batchSize: 50, concurrency: 8, kmsRequestsPerSecond: 250 },
    });
    await pipe.waitFor(c.id, `past ${ROWS / 4} items`, (p) => p.rewrapped >= ROWS / 4, 120_000);

    // One slot holds everything: the queue's keys, the job hashes and the KMS budget.
    const keys = await keysUnderPrefix(pipe.prefix);
    expect(keys.some((k) => k.includes(':batches:'))).toBe(true);
    expect(keys.some((k) => k.includes(':budget:'))).toBe(true);
    const slots = new Set(await Promise.all(keys.map(async (k) => Number(await cluster.command(seed, 'CLUSTER', 'KEYSLOT', k)))));
    expect([...slots]).toEqual([slot]);

    const before = await pipe.progress(c.id);
    expect(before.remaining).toBeGreaterThan(0);
    const oldMaster = await cluster.masterOfSlot(slot);
    const killedAt = Date.now();
    await cluster.kill(oldMaster);
    const newMaster = await cluster.waitHealthy(slot, 30_000);
    const failoverMs = Date.now() - killedAt;
    expect(newMaster).not.toBe(oldMaster);
    console.log(`master ${oldMaster} of slot ${slot} killed at ${before.rewrapped}/${ROWS} items; replica ${newMaster} serves it after ${failoverMs} ms`);

    await pipe.waitFor(c.id, 'moving again after the failover', (p) => p.rewrapped > before.rewrapped + 100 || p.state === 'completed', 120_000);
    const p = await pipe.waitFor(c.id, 'completed', (x) => x.state === 'completed', 180_000);

    // The store, read independently, and the ledger agree exactly; effects happened once.
    await expectEveryRowMovedOnce(pipe.db.pool, 'secrets', deks, v2, v1.version, p);
    // No process gave up on Redis: all three are still running.
    for (const x of pipe.all) expect(x.child.exitCode, x.name).toBeNull();
  }, 400_000);

  it('no DEK or KEK bytes in any process log (invariant 5)', () => {
    const guard = new LeakGuard();
    guard.secret(v1.material, v2.material, ...deks.values());
    guard.text(pipe.logs());
    expect(guard.findLeaks()).toEqual([]);
  });
});
