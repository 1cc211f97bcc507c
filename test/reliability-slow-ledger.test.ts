/**
 * Issue 20, scenario 6: a slow or unreachable ledger. The workers reach the ledger through a TCP
 * fault proxy, with a low statement timeout (REWRAP_PG_STATEMENT_TIMEOUT_MS), query timeout and
 * connect timeout (REWRAP_PG_*). Mid-campaign:
 * 1. the test holds `LOCK TABLE rewrap_campaign_counters IN EXCLUSIVE MODE` in a transaction
 *    that sleeps (pg_sleep) for LOCK_MS: every batch commit blocks on it. The server cancels each
 *    blocked commit at the statement timeout, the worker gives the batch back (released, marked as
 *    retrying: the campaign shows degraded, "ledger unavailable or too slow") instead of hanging,
 *    and the campaign completes its work once the lock is gone;
 * 2. the ledger's address is black-holed for HOLE_MS (accepted, no answer, no reset): new
 *    connections fail at the connect timeout, statements on open ones at the query timeout, and
 *    the workers carry on when it ends.
 * No worker exits; every row unwraps under the new KEK (independent code), the ledger's counts
 * equal the table, no row was written twice.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { inventoryByKek } from '../src/ledger/index.ts';
import type { CampaignProgress } from '../src/ledger/types.ts';
import { unwrapAll, type RowKek } from '../dev/reference/row-client.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { rowSource, rowsAt, rowsWrittenTwice, rowTable } from './support/row-fixture.ts';
import { startFaultProxy, type FaultProxy } from './support/fault-proxy.ts';
import { DATABASE_URL } from './harness/env.ts';
import { recordFigure, secondsSince } from './support/reliability-figures.ts';

const ROWS = 6_000;
const LOCK_MS = 10_000;
const HOLE_MS = 8_000;
const STATEMENT_TIMEOUT_MS = 1_000;
const QUERY_TIMEOUT_MS = 2_500;
const CONNECT_TIMEOUT_MS = 1_500;
const v1: RowKek = { id: 'k', version: '1', material: randomBytes(32) };
const v2: RowKek = { id: 'k', version: '2', material: randomBytes(32) };

let pipe: Pipeline;
let proxy: FaultProxy;
let deks: Map<string, Buffer>;

beforeAll(async () => {
  pipe = await startPipeline({
    label: 'slowledger',
    workers: 0,
    env: {
      REWRAP_PG_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS),
      REWRAP_PG_QUERY_TIMEOUT_MS: String(QUERY_TIMEOUT_MS),
      REWRAP_PG_CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS),
    },
  });
  deks = await rowTable(pipe.db.pool, 'secrets', ROWS, v1);
  // Workers (ledger and rows: one database) go through the proxy; the scheduler does not.
  const server = new URL(DATABASE_URL);
  proxy = await startFaultProxy(`${server.hostname}:${server.port || 5432}`);
  const viaProxy = new URL(pipe.db.url);
  viaProxy.host = `127.0.0.1:${proxy.port}`;
  pipe.env.DATABASE_URL = viaProxy.toString();
  await pipe.startWorker();
  await pipe.startWorker();
}, 180_000);

afterAll(async () => {
  await pipe?.stop();
  await proxy?.close();
});

const liveWorkers = () => pipe.workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null).length;

describe('slow and unreachable ledger (issue 20, scenario 6)', () => {
  it('commits blocked by a lock and a black-holed ledger: batches are given back, not hung, and the campaign completes', async () => {
    const keyringFile = await pipe.keyringFile([v1, v2]);
    const c = await pipe.create({
      name: 'slow ledger',
      sources: [rowSource('secrets')],
      provider: { type: 'local', keyringFile },
      from: 'k@1',
      to: 'k@2',
      options: { batchSize: 100, concurrency: 8, kmsRequestsPerSecond: 300 },
    });
    const t0 = Date.now();
    await pipe.waitFor(c.id, 'under way', (p) => p.rewrapped >= ROWS / 10, 120_000);

    // 1. A lock held with pg_sleep: commits block on the counters row.
    const locker = new pg.Client({ connectionString: pipe.db.url });
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE rewrap_campaign_counters IN EXCLUSIVE MODE'); // reads go on; updates wait
    const lockedAt = Date.now();
    const held = locker.query(`SELECT pg_sleep(${LOCK_MS / 1000})`);
    const degraded = await pipe.waitFor(c.id, 'degraded by the lock', (p) => p.health.status === 'degraded', LOCK_MS);
    const lockDetect = secondsSince(lockedAt);
    expect(degraded.health.reason).toMatch(/ledger unavailable or too slow/);
    expect(degraded.health.reason).toMatch(/statement timeout/);
    const duringLock = await pipe.progress(c.id);
    await held;
    await locker.query('COMMIT');
    const unlockedAt = Date.now();
    await locker.end();
    expect(liveWorkers()).toBe(2);
    const afterLock = await pipe.waitFor(c.id, 'moving after the lock', (p) => p.rewrapped + p.skipped > duringLock.rewrapped + duringLock.skipped, 60_000);
    const lockRecover = secondsSince(unlockedAt);
    const givenBack = pipe.logs().split('\n').filter((l) => l.includes('batch job will be retried') && l.includes('statement timeout')).length;
    expect(givenBack).toBeGreaterThan(0);
    console.log(`slow-ledger: lock ${LOCK_MS / 1000} s: degraded after ${lockDetect} s, ${givenBack} batch attempts given back, moving ${lockRecover} s after the lock went`);

    // 2. The ledger's address black-holed.
    let p: CampaignProgress = afterLock;
    expect(p.state).toBe('running');
    const mark = new Map(pipe.workers.map((w) => [w, w.lines.length]));
    const timeouts = (re: RegExp) => pipe.workers.flatMap((w) => w.lines.slice(mark.get(w) ?? 0)).filter((l) => re.test(l)).length;
    const anyTimeout = /timeout exceeded when trying to connect|Connection terminated due to connection timeout|Query read timeout/;
    const holeAt = Date.now();
    proxy.set({ blackhole: true });
    let holeDetect: number | null = null;
    // The fault lasts a set time; meanwhile, note when a worker first reports a timeout.
    while (Date.now() - holeAt < HOLE_MS) {
      if (holeDetect === null && timeouts(anyTimeout) > 0) holeDetect = secondsSince(holeAt);
      await sleep(100);
    }
    proxy.set({});
    const holeEnd = Date.now();
    const at = await pipe.progress(c.id);
    expect(liveWorkers()).toBe(2);
    await pipe.waitFor(c.id, 'moving after the black hole', (x) => x.rewrapped + x.skipped > at.rewrapped + at.skipped || x.state === 'completed', 60_000);
    const holeRecover = secondsSince(holeEnd);
    const connectTimeouts = timeouts(/timeout exceeded when trying to connect|Connection terminated due to connection timeout/);
    const readTimeouts = timeouts(/Query read timeout/);
    console.log(`slow-ledger: black hole ${HOLE_MS / 1000} s: ${proxy.stats.blackholed} connections died, ${connectTimeouts} connect timeouts and ${readTimeouts} query timeouts logged, moving ${holeRecover} s after it ended`);
    expect(connectTimeouts + readTimeouts).toBeGreaterThan(0);

    p = await pipe.waitFor(c.id, 'completed', (x) => x.state === 'completed', 180_000);
    expect(liveWorkers()).toBe(2);

    // Proof: every row under k@2 with its own DEK; ledger = table; written once.
    const rows = await unwrapAll(pipe.db.pool, 'secrets', [v2]);
    expect(rows.size).toBe(ROWS);
    for (const [id, r] of rows) if (!r.dek.equals(deks.get(id)!)) expect.fail(`row ${id}: wrong DEK under k@2`);
    expect(await rowsAt(pipe.db.pool, 'secrets', 'k', '2')).toBe(ROWS);
    expect(p.planned).toBe(ROWS);
    expect(p.failed).toBe(0);
    expect(p.rewrapped + p.skipped).toBe(ROWS);
    const inv = await inventoryByKek(pipe.db.pool);
    expect(inv.filter((r) => r.kekId === 'k' && r.kekVersion === '2').reduce((a, r) => a + r.items, 0)).toBe(ROWS);
    const twice = await rowsWrittenTwice(pipe.db.pool, 'secrets');
    expect(twice).toEqual([]);

    const wall = secondsSince(t0);
    recordFigure({
      scenario: 'Slow ledger (lock)',
      items: ROWS,
      faults: `counters table locked ${LOCK_MS / 1000} s (pg_sleep), statement timeout ${STATEMENT_TIMEOUT_MS} ms: ${givenBack} batch attempts given back`,
      lost: ROWS - p.rewrapped - p.skipped,
      duplicatedWrites: twice.length,
      detectSeconds: lockDetect,
      recoverSeconds: lockRecover,
      wallSeconds: wall,
    });
    recordFigure({
      scenario: 'Ledger black hole',
      items: ROWS,
      faults: `ledger address black-holed ${HOLE_MS / 1000} s (connect timeout ${CONNECT_TIMEOUT_MS} ms, query timeout ${QUERY_TIMEOUT_MS} ms): ${connectTimeouts} connect and ${readTimeouts} query timeouts`,
      lost: ROWS - p.rewrapped - p.skipped,
      duplicatedWrites: twice.length,
      detectSeconds: holeDetect,
      recoverSeconds: holeRecover,
      wallSeconds: wall,
    });
  }, 420_000);
});
