/**
 * Issue 13 point 5: keyring changes reach running workers. `incident start --decrypt-only` marks
 * the compromised version decrypt-only in the keyring file; a routine campaign still running
 * towards that very version must stop wrapping under it within one batch (workers load the
 * changed file before each batch) and pause with the reason, while the incident drains it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createEnvelopeTable } from '../src/stores/pg-table-schema.ts';
import { insertRows, unwrapAll } from '../dev/reference/row-client.ts';
import { runRewrap } from '../dev/services/processes.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { jsonOf, specFile } from './support/cli.ts';
import { LeakGuard } from './support/leak-guard.ts';

const k1 = { id: 'lk', version: '1', material: randomBytes(32) };
const k2 = { id: 'lk', version: '2', material: randomBytes(32) };
const k3 = { id: 'lk', version: '3', material: randomBytes(32) };
const WORKERS = 2;
const JOBS_PER_WORKER = 2; // REWRAP_WORKER_JOBS default
const BATCH = 50;
let pipe: Pipeline;

const pgSource = (table: string) => ({ type: 'pg', table, idColumn: 'id', wrappedKeyColumn: 'wrapped_dek', kekIdColumn: 'kek_id', kekVersionColumn: 'kek_version' });

beforeAll(async () => {
  pipe = await startPipeline({ label: 'keyring-reload', workers: WORKERS });
  await createEnvelopeTable(pipe.db.pool, 'routine_rows');
  await createEnvelopeTable(pipe.db.pool, 'leaked_rows');
  await insertRows(pipe.db.pool, 'routine_rows', 6000, k1);
  await insertRows(pipe.db.pool, 'leaked_rows', 300, k2);
}, 120_000);

afterAll(async () => {
  await pipe?.stop();
});

async function rowsUnder(table: string, version: string): Promise<number> {
  const { rows } = await pipe.db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${table} WHERE kek_version = $1`, [version]);
  return Number(rows[0]!.n);
}

describe('keyring changes reach running workers (issue 13 point 5)', () => {
  it('after incident start --decrypt-only, no worker wraps anything new under that KEK past one batch, and a campaign targeting it pauses with the reason', async () => {
    const keyringFile = await pipe.keyringFile([k1, k2, k3]);
    // Slow enough (100 items/s, 60 s for all) that the routine campaign is mid-way when the incident starts.
    const routine = await pipe.create({ name: 'routine', sources: [pgSource('routine_rows')], provider: { type: 'local', keyringFile }, from: 'lk@1', to: 'lk@2', options: { batchSize: BATCH, concurrency: 4, kmsRequestsPerSecond: 100 } });
    await pipe.waitFor(routine.id, 'under way', (p) => p.rewrapped >= 100, 60_000);

    const spec = await specFile(pipe, { name: 'lk@2 leaked', sources: [pgSource('leaked_rows')], provider: { type: 'local', keyringFile }, from: 'lk@2', to: 'lk@3' });
    const r = await runRewrap(['incident', 'start', '--kek', 'lk@2', '--to', 'lk@3', '--spec', spec, '--decrypt-only', '--json'], pipe.env);
    expect(r.code, r.stderr).toBe(0);
    const underTargetAtMark = await rowsUnder('routine_rows', '2');

    const incident = jsonOf<{ id: string }>(r);
    await pipe.waitFor(incident.id, 'completed', (p) => p.state === 'completed', 120_000);
    const paused = await pipe.waitFor(routine.id, 'paused', (p) => p.state === 'paused', 30_000);
    expect(paused.pauseReason).toMatch(/target KEK lk@2 is decrypt-only in keyring file .*nothing new may be wrapped under it/);

    // Within one batch: at most the batches the workers had in hand when the file changed. Those
    // may still land after the pause (a row batch is one UPDATE at its end; the lease, 4 s here,
    // fences the slower ones): wait until the count holds still for 6 s, then it must stay there.
    const inHand = WORKERS * JOBS_PER_WORKER * BATCH;
    let underTarget = await rowsUnder('routine_rows', '2');
    for (let still = Date.now(); Date.now() - still < 6000; ) {
      await new Promise((res) => setTimeout(res, 500));
      const n = await rowsUnder('routine_rows', '2');
      if (n !== underTarget) [underTarget, still] = [n, Date.now()];
    }
    console.log(`routine rows under lk@2: ${underTargetAtMark} when marked decrypt-only, ${underTarget} once the workers were done (bound +${inHand})`);
    expect(underTarget - underTargetAtMark).toBeLessThanOrEqual(inHand);
    expect((await pipe.progress(routine.id)).state).toBe('paused');

    // Nothing lost: every routine row unwraps under lk@1 or lk@2, every leaked row under lk@3.
    expect((await unwrapAll(pipe.db.pool, 'routine_rows', [k1, k2])).size).toBe(6000);
    expect((await unwrapAll(pipe.db.pool, 'leaked_rows', [k3])).size).toBe(300);
    const guard = new LeakGuard();
    guard.secret(k1.material, k2.material, k3.material);
    guard.text(pipe.logs(), r.stdout, r.stderr);
    expect(guard.findLeaks()).toEqual([]);
  }, 300_000);
});
