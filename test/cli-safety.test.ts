/**
 * The CLI at the edges a user meets first: a Redis that may evict keys is refused with a clear
 * message; a dry run counts items, KMS calls and the time at the budget without creating
 * anything; `campaign status --watch --json` streams progress until the campaign completes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createEnvelopeTable } from '../src/stores/pg-table-schema.ts';
import { insertRows } from '../dev/reference/row-client.ts';
import { listCampaigns } from '../src/ledger/index.ts';
import { runRewrap } from '../dev/services/processes.ts';
import { startPrivateRedis, type PrivateRedis } from '../dev/services/private-redis.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { jsonOf, specFile } from './support/cli.ts';

const v1 = { id: 'c', version: '1', material: randomBytes(32) };
const v2 = { id: 'c', version: '2', material: randomBytes(32) };
let pipe: Pipeline;
let lru: PrivateRedis;

beforeAll(async () => {
  pipe = await startPipeline({ label: 'cli', workers: 1 });
  await createEnvelopeTable(pipe.db.pool, 'cli_rows');
  await insertRows(pipe.db.pool, 'cli_rows', 1500, v1);
  lru = await startPrivateRedis();
  await lru.client.config('SET', 'maxmemory-policy', 'allkeys-lru');
}, 120_000);

afterAll(async () => {
  await lru?.stop();
  await pipe?.stop();
});

const spec = async (options: Record<string, unknown> = {}) =>
  specFile(pipe, {
    name: 'cli rows',
    sources: [{ type: 'pg', table: 'cli_rows', idColumn: 'id', wrappedKeyColumn: 'wrapped_dek', kekIdColumn: 'kek_id', kekVersionColumn: 'kek_version' }],
    provider: { type: 'local', keyringFile: await pipe.keyringFile([v1, v2]) },
    from: 'c@1',
    to: 'c@2',
    options,
  });

describe('rewrap CLI', () => {
  it('refuses to run a worker against a Redis whose maxmemory-policy may evict queue keys', async () => {
    const r = await runRewrap(['worker'], { ...pipe.env, REDIS_URL: lru.url });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/maxmemory-policy is "allkeys-lru"; rewrap \(BullMQ\) needs "noeviction".*CONFIG SET maxmemory-policy noeviction/s);
  });

  it('a dry run reports items, KMS calls and the time at the budget, and creates nothing', async () => {
    const r = await runRewrap(['campaign', 'create', '--spec', await spec({ kmsRequestsPerSecond: 100 }), '--dry-run', '--json'], pipe.env);
    expect(r.code, r.stderr).toBe(0);
    expect(jsonOf(r)).toEqual({ items: 1500, byStore: { 'pg:cli_rows': 1500 }, kmsCallsAtMost: 1500, estimatedSeconds: 15 });
    expect(await listCampaigns(pipe.db.pool)).toEqual([]);
  });

  it('a bad spec is refused naming the field', async () => {
    const r = await runRewrap(['campaign', 'create', '--spec', await spec({ batchSize: 'big' }), '--json'], pipe.env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('campaign spec.options.batchSize: expected an integer from 1 to 10000 (items per batch), got string');
  });

  it('status --watch --json streams progress until the campaign completes', async () => {
    // Created but not started, so the watch is surely running before the first item moves.
    const created = jsonOf<{ id: string }>(await runRewrap(['campaign', 'create', '--spec', await spec({ batchSize: 100, kmsRequestsPerSecond: 300 }), '--json'], pipe.env));
    const watching = runRewrap(['campaign', 'status', created.id, '--watch', '--interval-ms', '200', '--json'], pipe.env);
    const started = await runRewrap(['campaign', 'start', created.id, '--json'], pipe.env);
    expect(started.code, started.stderr).toBe(0);
    const r = await watching;
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { state: string; remaining: number; rewrapped: number });
    expect(lines.length).toBeGreaterThan(1);
    expect(lines.at(-1)).toMatchObject({ state: 'completed', remaining: 0, rewrapped: 1500 });
    expect(new Set(lines.map((l) => l.rewrapped)).size).toBeGreaterThan(1); // it moved while we watched
  });
});
