/**
 * The planner reads a source's next page while it writes the current one to the ledger (one page
 * ahead). When that read fails while the ledger write is still in flight, the failure must reach
 * the scheduler's tick like any other: CI saw a scheduler exit on a Postgres restart because the
 * read ahead's 57P01 arrived first and nothing was listening yet (an unhandled rejection ends a
 * Node process). Here the order is made certain, not left to a restart's timing: the next page's
 * read waits on an advisory lock the test holds (the id column is a domain whose CHECK takes it),
 * the ledger write waits on a table lock the test holds, and the test ends the read's session.
 * The plan step's time budget is set far beyond the test: with the default 200 ms, a step whose
 * ledger write the test held longer than that returned at its budget and dropped the failed read
 * unawaited (correct: the next tick reads the page again), so the tick did not fail and CI, on a
 * loaded box, saw no "campaign tick failed".
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { insertRows } from '../dev/reference/row-client.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { rowSource, rowsAt } from './support/row-fixture.ts';
import { eventually } from './support/eventually.ts';

const ROWS = 25;
const PAGE = 10;
const v1 = { id: 'ra', version: '1', material: randomBytes(32) };
const v2 = { id: 'ra', version: '2', material: randomBytes(32) };
/* Advisory locks are per database and test files share it: a key of this file's own. */
const GATE = randomBytes(6).readUIntBE(0, 6);

let pipe: Pipeline;
let holder: pg.Client;

beforeAll(async () => {
  pipe = await startPipeline({ label: 'readahead', workers: 1, env: { REWRAP_PLAN_PAGE: String(PAGE), REWRAP_PLAN_STEP_MS: '600000' } });
  await pipe.db.pool.query(`
    CREATE FUNCTION gate_open(v bigint) RETURNS boolean LANGUAGE plpgsql STRICT VOLATILE AS $$
      BEGIN PERFORM pg_advisory_xact_lock_shared(${GATE}); RETURN true; END $$;
    CREATE DOMAIN gated_id AS bigint CHECK (gate_open(VALUE));
    CREATE TABLE gated (id gated_id PRIMARY KEY, payload bytea, iv bytea, wrapped_dek bytea, kek_id text, kek_version text);`);
  await insertRows(pipe.db.pool, 'gated', ROWS, v1);
  holder = new pg.Client({ connectionString: pipe.db.url });
  holder.on('error', () => undefined); // the test's own session: a shared server's restart must not end the test process
  await holder.connect();
}, 120_000);

afterAll(async () => {
  await holder?.end();
  await pipe?.stop();
});

/** Sessions waiting on a lock the test's session holds: the scheduler's page read and its ledger write. */
async function blockedByHolder(): Promise<{ pid: number; waitEvent: string }[]> {
  const { rows } = await pipe.db.pool.query<{ pid: number; wait_event: string }>(
    `SELECT pid, wait_event FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid))`,
    [(holder as unknown as { processID: number }).processID],
  );
  return rows.map((r) => ({ pid: r.pid, waitEvent: r.wait_event }));
}

describe('the planner reads one page ahead', () => {
  it('a read ahead that fails while the ledger write is in flight fails the tick, not the scheduler, and planning resumes', async () => {
    await holder.query('SELECT pg_advisory_lock($1)', [GATE]); // the second page's read waits here
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE rewrap_batches IN EXCLUSIVE MODE'); // the first page's ledger write waits here
    const keyringFile = await pipe.keyringFile([v1, v2]);
    const c = await pipe.create({
      name: 'read-ahead',
      sources: [rowSource('gated')],
      provider: { type: 'local', keyringFile },
      from: 'ra@1',
      to: 'ra@2',
      options: { batchSize: 5 },
    });

    const blocked = await eventually('the page read and the ledger write both waiting on the test', async () => {
      const b = await blockedByHolder();
      return b.some((x) => x.waitEvent === 'advisory') && b.some((x) => x.waitEvent === 'relation') ? b : undefined;
    }, 60_000);
    const read = blocked.find((x) => x.waitEvent === 'advisory')!;
    await pipe.db.pool.query('SELECT pg_terminate_backend($1)', [read.pid]); // 57P01 on the read, as a restart sends it
    await eventually('the read session gone', async () => {
      const { rows } = await pipe.db.pool.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [read.pid]);
      return rows.length === 0 ? true : undefined;
    });
    /* The read's error is on the scheduler's socket now; its ledger write can only finish after this COMMIT. */
    await holder.query('COMMIT');
    await holder.query('SELECT pg_advisory_unlock($1)', [GATE]);
    const failed = await pipe.scheduler.waitForLine(/campaign tick failed/, 30_000); // rejects, with the last lines, if the scheduler exited
    expect(failed).toMatch(/terminating connection/);
    const done = await pipe.waitFor(c.id, 'completed', (p) => p.state === 'completed', 120_000);
    expect(pipe.scheduler.child.exitCode).toBeNull();
    expect(done).toMatchObject({ planned: ROWS, rewrapped: ROWS, failed: 0 });
    expect(await rowsAt(pipe.db.pool, 'gated', 'ra', '2')).toBe(ROWS);
  }, 240_000);
});
