/**
 * Campaign lifecycle through the real CLI against running processes:
 * - pause stops store writes within the lease time (measured in the STORE: a write log on the
 *   table and the rows at the target KEK), and the ledger then agrees with the store exactly;
 * - resume continues where it stopped and completes with exact counts, every row written once;
 * - cancel leaves no job of the campaign in Redis within seconds (BullMQ's own keys);
 * - exit codes of pause/resume/cancel/status (0 ok, 3 refused, 4 unknown id), and a second
 *   overlapping campaign is refused (exit 3) with a message naming the campaign in the way.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { unwrapAll, type RowKek } from '../dev/reference/row-client.ts';
import { getCampaign } from '../src/ledger/index.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { rowSource, rowsAt, rowsWrittenTwice, rowTable, rowWriteStats } from './support/row-fixture.ts';
import { jsonOf, rewrapCli, specFile } from './support/cli.ts';
import { campaignJobTraces } from './support/queue-jobs.ts';

const ROWS = 3_000;
/** Paced by the shared budget: a campaign takes ROWS / RATE = 30 s, time to pause and cancel it mid-way through the CLI. */
const RATE = 100;
const v1: RowKek = { id: 'k', version: '1', material: randomBytes(32) };
const v2: RowKek = { id: 'k', version: '2', material: randomBytes(32) };
const v3: RowKek = { id: 'k', version: '3', material: randomBytes(32) };

let pipe: Pipeline;
let redis: Redis;
let deks: Map<string, Buffer>;
let keyringFile: string;
let leaseMs: number;

const spec = (name: string, from: string, to: string) => ({
  name,
  sources: [rowSource('orders')],
  provider: { type: 'local', keyringFile },
  from,
  to,
  options: { batchSize: 50, concurrency: 8, kmsRequestsPerSecond: RATE },
});

/** Polls until `check` returns true; returns the elapsed milliseconds. */
async function within(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<number> {
  const t0 = Date.now();
  while (!(await check())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`not ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return Date.now() - t0;
}

beforeAll(async () => {
  pipe = await startPipeline({ label: 'lifecycle', workers: 2 });
  leaseMs = Number(pipe.env.REWRAP_LEASE_MS);
  redis = new Redis(pipe.redisUrl, { maxRetriesPerRequest: 2 });
  deks = await rowTable(pipe.db.pool, 'orders', ROWS, v1);
  keyringFile = await pipe.keyringFile([v1, v2, v3]);
}, 120_000);

afterAll(async () => {
  redis?.disconnect();
  await pipe?.stop();
});

describe('campaign lifecycle through the CLI', () => {
  it('pause stops store writes within the lease time; resume completes with exact counts, each row written once', async () => {
    const created = await rewrapCli(pipe, ['campaign', 'create', '--spec', await specFile(pipe, spec('orders k1 to k2', 'k@1', 'k@2')), '--start', '--json']);
    expect(created.code, created.stderr).toBe(0);
    const { id } = jsonOf<{ id: string; state: string }>(created);

    // A second campaign over the same table is refused, naming the one in the way.
    const overlap = await rewrapCli(pipe, ['campaign', 'create', '--spec', await specFile(pipe, spec('orders again', 'k@1', 'k@3')), '--json']);
    expect(overlap.code, `${overlap.stdout}${overlap.stderr}; campaign ${id} is ${JSON.stringify(await pipe.progress(id))}`).toBe(3);
    expect(overlap.stderr).toContain(`campaign ${id}`);
    expect(overlap.stderr).toContain('pg:orders');

    await pipe.waitFor(id, 'under way', (p) => p.rewrapped >= 300, 120_000);

    const paused = await rewrapCli(pipe, ['campaign', 'pause', id, '--json']);
    expect(paused.code, paused.stderr).toBe(0);
    expect(jsonOf(paused), `campaign ${id} is ${JSON.stringify(await pipe.progress(id))}`).toEqual({ id, ok: true, state: 'paused' });
    const pausedAt = (await getCampaign(pipe.db.pool, id))!.updatedAt;
    const pausedWithin = await within('withdrawn from Redis after pause', 15_000, async () => (await campaignJobTraces(redis, pipe.prefix, id)).length === 0);

    // Measured in the store: no write later than one lease after the pause, and nothing moves.
    // (Meanwhile: pausing a paused campaign is refused.)
    const [pauseAgain] = await Promise.all([
      rewrapCli(pipe, ['campaign', 'pause', id]),
      new Promise((r) => setTimeout(r, leaseMs + 1_000)), // waiting for something NOT to happen
    ]);
    expect(pauseAgain.code, pauseAgain.stdout).toBe(3);
    const atTarget = await rowsAt(pipe.db.pool, 'orders', 'k', '2');
    const writes = await rowWriteStats(pipe.db.pool, 'orders');
    expect(writes.lastAt!.getTime() - pausedAt.getTime()).toBeLessThanOrEqual(leaseMs);
    await new Promise((r) => setTimeout(r, 2_000));
    expect(await rowsAt(pipe.db.pool, 'orders', 'k', '2')).toBe(atTarget);
    expect((await rowWriteStats(pipe.db.pool, 'orders')).writes).toBe(writes.writes);
    expect(atTarget).toBeLessThan(ROWS);
    // The ledger tells the truth about what was written before the pause.
    const p1 = await pipe.progress(id);
    expect(p1.state).toBe('paused');
    expect(p1.rewrapped).toBe(atTarget);
    console.log(`lifecycle: paused at ${atTarget}/${ROWS}; last store write ${writes.lastAt!.getTime() - pausedAt.getTime()} ms after the pause; jobs gone from Redis in ${pausedWithin} ms`);

    const resumed = await rewrapCli(pipe, ['campaign', 'resume', id, '--json']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(jsonOf(resumed)).toEqual({ id, ok: true, state: 'running' });
    const again = await rewrapCli(pipe, ['campaign', 'resume', id, '--json']);
    expect(again.code).toBe(3); // resume of a running campaign is refused
    // (the last 10% may already be done by the time this CLI call starts: completed is refused too)
    expect(jsonOf(again)).toMatchObject({ id, ok: false, state: expect.stringMatching(/^(running|completed)$/) });

    const p = await pipe.waitFor(id, 'completed', (x) => x.state === 'completed', 180_000);
    expect(p).toMatchObject({ planned: ROWS, rewrapped: ROWS, skipped: 0, failed: 0, remaining: 0 });
    const rows = await unwrapAll(pipe.db.pool, 'orders', [v2]);
    expect(rows.size).toBe(ROWS);
    for (const [rid, r] of rows) expect(r.dek.equals(deks.get(rid)!), `row ${rid}`).toBe(true);
    expect(await rowsWrittenTwice(pipe.db.pool, 'orders')).toEqual([]);

    const status = await rewrapCli(pipe, ['campaign', 'status', id, '--json']);
    expect(status.code).toBe(0);
    expect(jsonOf(status)).toMatchObject({ id, state: 'completed', planned: ROWS, rewrapped: ROWS, failed: 0 });
  }, 300_000);

  it('cancel leaves no job of the campaign in Redis within seconds, and its workers stop writing', async () => {
    const c = await pipe.create(spec('orders k2 to k3', 'k@2', 'k@3'));
    await pipe.waitFor(c.id, 'under way', (p) => p.rewrapped >= 200, 120_000);
    expect((await campaignJobTraces(redis, pipe.prefix, c.id)).length).toBeGreaterThan(0);

    const cancelled = await rewrapCli(pipe, ['campaign', 'cancel', c.id, '--json']);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect(jsonOf(cancelled)).toEqual({ id: c.id, ok: true, state: 'cancelled' });
    const cancelledAt = (await getCampaign(pipe.db.pool, c.id))!.updatedAt;
    const gone = await within('gone from Redis after cancel', 15_000, async () => (await campaignJobTraces(redis, pipe.prefix, c.id)).length === 0);
    console.log(`lifecycle: cancelled campaign's jobs gone from Redis ${gone} ms after the CLI returned`);

    // Terminal: nothing moves a cancelled campaign (asked while waiting out the lease).
    const [cancelAgain, resumeCancelled] = await Promise.all([
      rewrapCli(pipe, ['campaign', 'cancel', c.id]),
      rewrapCli(pipe, ['campaign', 'resume', c.id]),
      new Promise((r) => setTimeout(r, leaseMs + 1_000)), // waiting for something NOT to happen
    ]);
    expect(cancelAgain.code, cancelAgain.stdout).toBe(3);
    expect(resumeCancelled.code, resumeCancelled.stdout).toBe(3);
    const writes = await rowWriteStats(pipe.db.pool, 'orders');
    expect(writes.lastAt!.getTime() - cancelledAt.getTime()).toBeLessThanOrEqual(leaseMs);
    expect(await campaignJobTraces(redis, pipe.prefix, c.id)).toEqual([]);
    const p = await pipe.progress(c.id);
    expect(p.state).toBe('cancelled');
    expect(p.rewrapped).toBe(await rowsAt(pipe.db.pool, 'orders', 'k', '3'));
    expect(p.rewrapped).toBeLessThan(ROWS);

  }, 180_000);

  it('exit code 4 for an unknown campaign id', async () => {
    const cmds = ['pause', 'resume', 'cancel', 'status'];
    const results = await Promise.all(cmds.map((cmd) => rewrapCli(pipe, ['campaign', cmd, 'cnosuchcampa', '--json'])));
    results.forEach((r, i) => {
      expect(r.code, `campaign ${cmds[i]}`).toBe(4);
      expect(r.stderr).toContain('no campaign cnosuchcampa');
    });
  }, 60_000);
});
