/**
 * Issue 13, point 9, and issue 20, scenario 3: processes survive their database. A private
 * PostgreSQL cluster (the ledger and the rows) is stopped with `pg_ctl stop -m fast`, left down
 * for DOWN_MS while workers commit, and started again, twice, while a campaign rotates rows with
 * two schedulers (one active, one standby), two worker processes and `rewrap api` (polled
 * throughout). Every session is terminated with 57P01 each time: pooled clients (idle and checked
 * out, in the ledger pool and the data pool) and the scheduler's lock connection, and connections
 * are refused while it is down. Afterwards every process is still alive (the API answers again),
 * the campaign completed, every row unwraps under the new KEK with independent code, and the
 * ledger's counters equal both the table and the ledger's own item rows (no commit lost or counted
 * twice), and no row was written twice.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import pgdriver from 'pg';
import { inventoryByKek } from '../src/ledger/index.ts';
import type { CampaignProgress } from '../src/ledger/types.ts';
import { unwrapAll } from '../dev/reference/row-client.ts';
import { isTransientPgError } from '../src/stores/pg-table-errors.ts';
import { startRewrapProcess } from '../dev/services/processes.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { startPrivatePostgres, type PrivatePostgres } from './support/private-postgres.ts';
import { rowSource, rowsAt, rowsWrittenTwice, rowTable } from './support/row-fixture.ts';
import { recordFigure, secondsSince } from './support/reliability-figures.ts';
import { outcomeCounts } from './support/ledger-commits.ts';

const ROWS = 60_000;
const DOWN_MS = 3_000;
const READ_TOKEN = 'pg-restart-read-token-0123456789';
const v1 = { id: 'k', version: '1', material: randomBytes(32) };
const v2 = { id: 'k', version: '2', material: randomBytes(32) };

let pg: PrivatePostgres;
let pipe: Pipeline;
let deks: Map<string, Buffer>;
let data: pgdriver.Pool;
let apiUrl: string;

beforeAll(async () => {
  pg = await startPrivatePostgres();
  /* The rows live in the private cluster's public schema and are reached through
     DATA_DATABASE_URL (another URL than the ledger's schema), so the data pool is a pool of its
     own in every process and goes through the restarts too. */
  const dataUrl = `${pg.url}?application_name=rewrap-data`;
  data = new pgdriver.Pool({ connectionString: dataUrl, max: 4 });
  data.on('error', () => undefined); // the test's own idle clients see the restarts too
  deks = await rowTable(data, 'secrets', ROWS, v1);
  pipe = await startPipeline({ label: 'pgrestart', workers: 2, databaseUrl: pg.url, env: { DATA_DATABASE_URL: dataUrl, REWRAP_WORKER_JOBS: '2' } });
  pipe.db.pool.on('error', () => undefined);
  // A standby scheduler: after a restart either one may win the lock; the other stands by.
  const standby = startRewrapProcess('scheduler-2', ['scheduler'], pipe.env);
  pipe.all.push(standby);
  await standby.waitForLine(/standing by/, 120_000); // tsx compiles at start: slow on a loaded box
  const api = startRewrapProcess('api', ['api', '--port', '0'], { ...pipe.env, REWRAP_API_READ_TOKEN: READ_TOKEN });
  pipe.all.push(api);
  apiUrl = /dashboard at (http:\/\/\S+?)\/$/.exec(await api.waitForLine(/dashboard at http/, 120_000))![1]!;
}, 300_000);

afterAll(async () => {
  await pipe?.stop();
  await data?.end();
  await pg?.stop();
});

function deadProcesses(): string[] {
  /* The error lines, and the stack after an unhandled one: the evidence of which client had no listener. */
  const why = (lines: string[]) => {
    const at = lines.findIndex((l) => /Unhandled/.test(l));
    const stack = at >= 0 ? lines.slice(at, at + 20) : [];
    /* And the last lines: an unhandled rejection prints its stack there, with no "Unhandled" line. */
    return [...lines.filter((l) => /^\w*[Ee]rror:|terminating connection/.test(l)).slice(0, 5), ...stack, '--- last lines:', ...lines.slice(-25)].join('\n');
  };
  return pipe.all.filter((x) => x.child.exitCode !== null || x.child.signalCode !== null).map((x) => `${x.name} exited (${x.child.exitCode ?? x.child.signalCode}):\n${why(x.lines)}`);
}

/** Polls the ledger until `done`; a query the restart broke is asked again. Fails at once if a process died. */
async function waitFor(id: string, what: string, done: (p: CampaignProgress) => boolean, timeoutMs: number): Promise<CampaignProgress> {
  const deadline = Date.now() + timeoutMs;
  let last: CampaignProgress | undefined;
  for (;;) {
    const dead = deadProcesses();
    if (dead.length > 0) throw new Error(`processes died while waiting for ${what}:\n${dead.join('\n')}`);
    try {
      last = await pipe.progress(id);
      if (done(last)) return last;
    } catch (err) {
      if (!isTransientPgError(err)) throw err;
    }
    if (Date.now() > deadline) throw new Error(`campaign ${id}: not ${what} within ${timeoutMs} ms; progress ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('a database restart mid-campaign', () => {
  it('every process survives two Postgres restarts and the campaign completes with exact counts', async () => {
    const keyringFile = await pipe.keyringFile([v1, v2]);
    const c = await pipe.create({
      name: 'pg-restart',
      sources: [rowSource('secrets')],
      provider: { type: 'local', keyringFile },
      from: 'k@1',
      to: 'k@2',
      options: { batchSize: 200, concurrency: 8 },
    });
    const t0 = Date.now();
    // The API, polled 4 times a second throughout: when it first fails, and that it answers again.
    const answers: { at: number; ok: boolean }[] = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const at = Date.now();
        const ok = await fetch(`${apiUrl}/api/campaigns/${c.id}`, { headers: { authorization: `Bearer ${READ_TOKEN}` }, signal: AbortSignal.timeout(5_000) }).then(
          async (r) => (await r.arrayBuffer(), r.status === 200),
          () => false,
        );
        answers.push({ at, ok });
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
    let mark = 0;
    const detect: number[] = [];
    const recover: number[] = [];
    for (let restart = 1; restart <= 2; restart++) {
      /* Stop on observed progress: some rows moved since the last restart, the campaign still running. */
      const since = mark;
      const at = await waitFor(c.id, `moving (before restart ${restart})`, (p) => p.rewrapped >= since + ROWS / 10 || p.state === 'completed', 300_000);
      expect(at.state, `restart ${restart} must happen mid-campaign; raise ROWS if the box got faster`).toBe('running');
      const stoppedAt = Date.now();
      await pg.stopServer();
      await new Promise((r) => setTimeout(r, DOWN_MS - (Date.now() - stoppedAt))); // down for a set time: the fault
      await pg.startServer();
      const startedAt = Date.now();
      const apiFailed = answers.find((a) => a.at >= stoppedAt && !a.ok);
      detect.push(apiFailed ? secondsSince(stoppedAt, apiFailed.at) : NaN);
      const stopped = await waitFor(c.id, `progress read after restart ${restart}`, () => true, 60_000);
      await waitFor(c.id, `moving after restart ${restart}`, (p) => p.rewrapped > stopped.rewrapped || p.state === 'completed', 120_000);
      recover.push(secondsSince(startedAt));
      console.log(`pg-restart: stop ${restart} at ${at.rewrapped} of ${ROWS} rows rewrapped, down ${secondsSince(stoppedAt, startedAt)} s; API failed after ${detect.at(-1)} s; moving ${recover.at(-1)} s after the start`);
      mark = at.rewrapped;
    }
    const p = await waitFor(c.id, 'completed', (x) => x.state === 'completed', 600_000);
    console.log(`pg-restart: completed ${JSON.stringify(p)} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);

    // Every process is still alive, and the API answers again.
    expect(deadProcesses()).toEqual([]);
    const back = answers.length;
    await waitFor(c.id, 'the API answering again', () => answers.slice(back).some((a) => a.ok), 30_000);
    polling = false;
    await poller;
    expect(answers.some((a) => !a.ok), 'the API noticed the database was down').toBe(true);

    // Counted in the store with independent code: every row unwraps under k@2 to its own DEK.
    expect(await rowsAt(data, 'secrets', 'k', '2')).toBe(ROWS);
    const rows = await unwrapAll(data, 'secrets', [v2]);
    expect(rows.size).toBe(ROWS);
    for (const [id, r] of rows) if (!r.dek.equals(deks.get(id)!)) expect.fail(`row ${id}: wrong DEK under k@2`);
    expect(await rowsWrittenTwice(data, 'secrets')).toEqual([]);

    // The ledger agrees exactly, and no item is counted twice: counters = ledger rows (items or batches) = the table.
    expect(p.planned).toBe(ROWS);
    expect(p.failed).toBe(0);
    expect(p.rewrapped + p.skipped).toBe(ROWS);
    expect(await outcomeCounts(pipe.db.pool, c.id)).toEqual({ rewrapped: p.rewrapped, ...(p.skipped ? { skipped: p.skipped } : {}) });
    const inv = await inventoryByKek(pipe.db.pool);
    expect(inv.filter((r) => r.kekId === 'k' && r.kekVersion === '2').reduce((a, r) => a + r.items, 0)).toBe(ROWS);

    recordFigure({
      scenario: 'Postgres restart x2',
      items: ROWS,
      faults: `private cluster stopped (pg_ctl -m fast) for ${DOWN_MS / 1000} s and started, twice; 2 schedulers, 2 workers, the API (polled 4/s)`,
      lost: ROWS - (await rowsAt(data, 'secrets', 'k', '2')),
      duplicatedWrites: (await rowsWrittenTwice(data, 'secrets')).length,
      detectSeconds: Math.max(...detect),
      recoverSeconds: Math.max(...recover),
      wallSeconds: secondsSince(t0),
    });
  }, 900_000);
});
