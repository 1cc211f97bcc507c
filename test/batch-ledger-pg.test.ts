/**
 * The batch ledger form for Postgres tables (issue 17, point 1; docs/batch-ledger-design.md),
 * through real scheduler and worker processes and the real CLI (REWRAP_LEDGER_FORM=batches):
 * - every row moves and unwraps under the new KEK to its original DEK, each written once; the
 *   ledger holds one row per batch and none per item, and its counts match the store;
 * - rows written under the old KEK while the campaign runs (new ids above the plan, and rows
 *   written back inside planned ranges) are moved by the batches or the delta pass: nothing is
 *   left behind when the campaign completes;
 * - rows that cannot be rewrapped are exceptions: counted once, listed by the failures report,
 *   and the retirement gate refuses the old KEK naming them (invariant 7); the completion and
 *   exposure reports list a line per range and per exception;
 * - a commit repeated for one claim changes nothing (invariant 2, the ledger's side);
 * - rows a claim wrote without committing are not read again by the next claim: its range keeps
 *   the planned count and counts them skipped, moved-unconfirmed in the exposure report;
 * - no DEK or KEK bytes in any log or CLI output (invariant 5).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { insertRows, unwrapAll, type RowKek } from '../dev/reference/row-client.ts';
import { aesUnwrap, aesWrap } from '../dev/reference/s3ec-client.ts';
import { claimBatch, commitBatchRange, inventoryByKek } from '../src/ledger/index.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { rowSource, rowsAt, rowsWrittenTwice, rowTable } from './support/row-fixture.ts';
import { jsonOf, rewrapCli, specFile } from './support/cli.ts';
import { LeakGuard } from './support/leak-guard.ts';
import { createStarted, ledgerRows as ledgerRowsOf } from './support/batch-ledger.ts';
import { loadKeyringFile } from '../src/kek/keyring-file.ts';

const v1: RowKek = { id: 'b', version: '1', material: randomBytes(32) };
const v2: RowKek = { id: 'b', version: '2', material: randomBytes(32) };
const v3: RowKek = { id: 'b', version: '3', material: randomBytes(32) };
const c1: RowKek = { id: 'c', version: '1', material: randomBytes(32) };
const c2: RowKek = { id: 'c', version: '2', material: randomBytes(32) };
/* Two tenants of a key map. */
const [t1a, t1b, t2a, t2b] = ['t1@1', 't1@2', 't2@1', 't2@2'].map((n) => ({ id: n.split('@')[0]!, version: n.split('@')[1]!, material: randomBytes(32) })) as [RowKek, RowKek, RowKek, RowKek];

let pipe: Pipeline;
let keyringFile: string;
const guard = new LeakGuard();
guard.secret(v1.material, v2.material, v3.material, c1.material, c2.material, t1a.material, t1b.material, t2a.material, t2b.material);

const spec = (name: string, table: string, from: string, to: string, options: Record<string, unknown> = {}) => ({
  name,
  sources: [rowSource(table)],
  provider: { type: 'local', keyringFile },
  from,
  to,
  options: { batchSize: 100, concurrency: 8, ...options },
});

const create = (s: unknown) => createStarted(pipe, guard, s);

const completed = (id: string, timeoutMs = 60_000) =>
  pipe.waitFor(id, 'completed', (p) => p.state === 'completed', timeoutMs).catch((err: Error) => {
    throw new Error(`${err.message}\nworkers:\n${pipe.workers.map((w) => w.lines.slice(-15).join('\n')).join('\n')}`);
  });

const ledgerRows = (id: string) => ledgerRowsOf(pipe.db.pool, id);

beforeAll(async () => {
  pipe = await startPipeline({ label: 'batchform', workers: 2, env: { REWRAP_LEDGER_FORM: 'batches' } });
  keyringFile = await pipe.keyringFile([v1, v2, v3, c1, c2, t1a, t1b, t2a, t2b]);
}, 120_000);

afterAll(async () => {
  await pipe?.stop();
});

describe('the batch ledger form (Postgres tables)', () => {
  it('moves 5,000 rows with one ledger row per batch and none per item; the counts match the store, each row written once', async () => {
    const deks = await rowTable(pipe.db.pool, 'accounts', 5_000, v1);
    for (const d of deks.values()) guard.secret(d);
    const id = await create(spec('accounts b1 to b2', 'accounts', 'b@1', 'b@2'));
    const p = await completed(id);

    const rows = await unwrapAll(pipe.db.pool, 'accounts', [v2]); // only b@2 given: a row under b@1 would throw
    expect(rows.size).toBe(5_000);
    for (const [rowId, r] of rows) expect(r.dek.equals(deks.get(rowId)!), `row ${rowId}`).toBe(true);
    expect(await rowsAt(pipe.db.pool, 'accounts', 'b', '2')).toBe(5_000);
    expect(await rowsWrittenTwice(pipe.db.pool, 'accounts')).toEqual([]);
    expect({ planned: p.planned, rewrapped: p.rewrapped, skipped: p.skipped, failed: p.failed, remaining: p.remaining }).toEqual({
      planned: 5_000, rewrapped: 5_000, skipped: 0, failed: 0, remaining: 0,
    });
    const ledger = await ledgerRows(id);
    expect(ledger.form).toBe('batches');
    expect(ledger.items).toBe(0);
    expect(ledger.exceptions).toBe(0);
    expect(ledger.batches).toBeGreaterThanOrEqual(50); // the main pass's 50 ranges, and the (empty) delta pass's none
    expect(ledger.batches).toBeLessThanOrEqual(52);
    // The inventory by KEK (dashboard, metrics) comes from the batch rows.
    expect(await inventoryByKek(pipe.db.pool, 'pg:accounts')).toEqual([{ storeId: 'pg:accounts', kekId: 'b', kekVersion: '2', materialId: null, items: 5_000 }]);

    // A later campaign that drains b@2 from the table supersedes what the first one left there.
    const next = await create(spec('accounts b2 to b3', 'accounts', 'b@2', 'b@3'));
    await pipe.waitFor(next, 'half way', (q) => q.rewrapped >= 1_000, 60_000);
    const during = await inventoryByKek(pipe.db.pool, 'pg:accounts');
    expect(during.reduce((a, r) => a + r.items, 0)).toBe(5_000); // moved ones leave b@2 as they reach b@3
    await completed(next);
    expect(await inventoryByKek(pipe.db.pool, 'pg:accounts')).toEqual([{ storeId: 'pg:accounts', kekId: 'b', kekVersion: '3', materialId: null, items: 5_000 }]);
  });

  it('rows written under the old KEK while the campaign runs (new ids, and rows written back inside done ranges) are all moved before it completes', async () => {
    const deks = await rowTable(pipe.db.pool, 'orders', 2_000, v1);
    // Paced so that the writes below land while batches are still running.
    const id = await create(spec('orders b1 to b2', 'orders', 'b@1', 'b@2', { batchSize: 50, kmsRequestsPerSecond: 400 }));
    await pipe.waitFor(id, 'under way', (p) => p.rewrapped >= 500, 60_000);
    // The application: 300 new rows under b@1 (ids above every planned range) ...
    const added = await insertRows(pipe.db.pool, 'orders', 300, v1, 2_001);
    // ... and 20 rows of ranges already done written back under b@1 with fresh DEKs.
    const { rows: moved } = await pipe.db.pool.query<{ id: string }>(`SELECT id::text FROM orders WHERE kek_version = '2' ORDER BY id LIMIT 20`);
    const rewritten = new Map<string, Buffer>();
    for (const { id: rowId } of moved) {
      const dek = randomBytes(32);
      rewritten.set(rowId, dek);
      await pipe.db.pool.query(`UPDATE orders SET wrapped_dek = $1, kek_version = '1' WHERE id = $2`, [aesWrap(v1.material, dek), rowId]);
    }
    for (const d of [...added.values(), ...rewritten.values(), ...deks.values()]) guard.secret(d);
    await completed(id);

    const rows = await unwrapAll(pipe.db.pool, 'orders', [v2]);
    expect(rows.size).toBe(2_300);
    expect(await rowsAt(pipe.db.pool, 'orders', 'b', '1')).toBe(0);
    for (const [rowId, r] of rows) {
      const want = rewritten.get(rowId) ?? added.get(rowId) ?? deks.get(rowId)!;
      expect(r.dek.equals(want), `row ${rowId}`).toBe(true);
    }
    const p = await pipe.progress(id);
    // Counts are per move: the 20 rows written back moved twice.
    expect(p.rewrapped).toBe(2_300 + 20);
    expect(p.planned).toBe(p.rewrapped + p.skipped + p.failed);
    expect(p.remaining).toBe(0);

    /* --expand lists each row once: the delta pass's ranges re-cover rows of the plan's, and only their rows above the plan's last id are theirs. */
    const out = join(pipe.dir, 'orders-expanded.jsonl');
    const expanded = await rewrapCli(pipe, ['campaign', 'report', id, '--kind', 'completion', '--expand', '--out', out]);
    expect(expanded.code, expanded.stderr).toBe(0);
    const lines = (await readFile(out, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { item: string | null; outcome: string; kek_now: string | null; pass: string });
    expect(lines.some((l) => l.item === null && l.pass === 'delta'), 'the delta pass cut ranges').toBe(true);
    const listed = lines.filter((l) => l.item !== null);
    expect(listed.map((l) => Number(l.item)).sort((a, b) => a - b)).toEqual(Array.from({ length: 2_300 }, (_, i) => i + 1));
    expect(listed.every((l) => l.outcome === 'row' && l.kek_now === 'b@2')).toBe(true);
  });

  it('rows that cannot be rewrapped are exceptions, counted once; the gate refuses the old KEK naming them; the completion and exposure reports list ranges and exceptions', async () => {
    const deks = await rowTable(pipe.db.pool, 'vault', 400, v1);
    for (const d of deks.values()) guard.secret(d);
    // Three rows whose wrapped key is no AES/GCM envelope of any KEK.
    await pipe.db.pool.query(`UPDATE vault SET wrapped_dek = $1 WHERE id IN (7, 150, 399)`, [randomBytes(40)]);
    const id = await create(spec('vault b1 to b2', 'vault', 'b@1', 'b@2', { batchSize: 50 }));
    const p = await completed(id);
    expect({ rewrapped: p.rewrapped, failed: p.failed, remaining: p.remaining, planned: p.planned }).toEqual({ rewrapped: 397, failed: 3, remaining: 0, planned: 400 });
    expect((await ledgerRows(id)).exceptions).toBe(3);

    const failures = await rewrapCli(pipe, ['campaign', 'report', id, '--kind', 'failures', '--format', 'jsonl']);
    guard.text(failures.stdout, failures.stderr);
    expect(failures.code, failures.stderr).toBe(0);
    const items = failures.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l).item ?? JSON.parse(l).itemKey);
    expect(items.sort()).toEqual(['150', '399', '7']);

    // The completion report: a line per range with its counts, and one per exception.
    const out = join(pipe.dir, 'vault-completion.jsonl');
    const completion = await rewrapCli(pipe, ['campaign', 'report', id, '--kind', 'completion', '--out', out, '--json']);
    guard.text(completion.stdout, completion.stderr);
    expect(completion.code, completion.stderr).toBe(0);
    const lines = (await readFile(out, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, string | number | null>);
    const ranges = lines.filter((l) => l.outcome === 'batch');
    expect(ranges.reduce((a, l) => a + Number(l.rewrapped), 0)).toBe(397);
    expect(ranges.reduce((a, l) => a + Number(l.failed), 0)).toBe(3);
    expect(ranges.every((l) => l.to_kek === 'b@2' && l.range_hi !== null)).toBe(true);
    // The plan's ranges cover the table without a gap: each starts where the one before ended.
    const bounds = ranges.filter((l) => l.pass === 'plan').map((l) => [l.range_lo, l.range_hi]);
    expect(bounds[0]![0]).toBeNull();
    for (let i = 1; i < bounds.length; i++) expect(bounds[i]![0]).toBe(bounds[i - 1]![1]);
    expect(bounds[bounds.length - 1]![1]).toBe('400');
    expect(lines.filter((l) => l.outcome === 'failed').map((l) => l.item).sort()).toEqual(['150', '399', '7']);
    expect(jsonOf<{ items: number }>(completion).items).toBe(400);

    /* --expand: every row of the table once, read from it now: the 397 moved under b@2, the 3 exceptions with their own outcome. */
    const expandedOut = join(pipe.dir, 'vault-completion-expanded.jsonl');
    const expanded = await rewrapCli(pipe, ['campaign', 'report', id, '--kind', 'completion', '--expand', '--out', expandedOut, '--json']);
    guard.text(expanded.stdout, expanded.stderr);
    expect(expanded.code, expanded.stderr).toBe(0);
    const expandedLines = (await readFile(expandedOut, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, string | number | null>);
    const perRow = expandedLines.filter((l) => l.item !== null);
    expect(perRow.map((l) => Number(l.item)).sort((a, b) => a - b)).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));
    expect(perRow.filter((l) => l.outcome === 'row').every((l) => l.kek_now === 'b@2')).toBe(true);
    expect(perRow.filter((l) => l.outcome === 'failed').map((l) => l.item).sort()).toEqual(['150', '399', '7']);
    expect(jsonOf<{ byOutcome: Record<string, number> }>(expanded).byOutcome.rows).toBe(397);
    const onlyCompletion = await rewrapCli(pipe, ['campaign', 'report', id, '--kind', 'exposure', '--expand']);
    expect(onlyCompletion.code).not.toBe(0);
    expect(onlyCompletion.stderr).toContain('--expand: only with --kind completion');

    // The exposure report of b@1: 397 moved in ranges, the three rows exposed by name.
    const exposureOut = join(pipe.dir, 'vault-exposure.jsonl');
    const exposure = await rewrapCli(pipe, ['campaign', 'report', id, '--kind', 'exposure', '--out', exposureOut, '--json']);
    guard.text(exposure.stdout, exposure.stderr);
    expect(exposure.code, exposure.stderr).toBe(0);
    const summary = jsonOf<{ totals: Record<string, number>; exposedByStore: Record<string, number>; timeline: { moved: number }[] }>(exposure);
    expect(summary.totals).toMatchObject({ moved: 397, exposed: 3, underKek: 400 });
    expect(summary.exposedByStore).toEqual({ 'pg:vault': 3 });
    expect(summary.timeline.reduce((a, t) => a + t.moved, 0)).toBe(397);
    const exposedLines = (await readFile(exposureOut, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { status: string; item: string | null });
    expect(exposedLines.filter((l) => l.status === 'exposed').map((l) => l.item).sort()).toEqual(['150', '399', '7']);

    // The keks report: moved away from b@1, and what is still under it, from the batch rows and the exceptions.
    const keks = await rewrapCli(pipe, ['campaign', 'report', id, '--kind', 'keks', '--format', 'jsonl']);
    guard.text(keks.stdout, keks.stderr);
    expect(keks.code, keks.stderr).toBe(0);
    expect(JSON.parse(keks.stdout.trim())).toEqual({ from_kek: 'b@1', to_kek: 'b@2', moved: 397, remaining: 3, failed: 3 });

    const retire = await rewrapCli(pipe, ['kek', 'retire', 'b@1', '--grace', '0', '--json']);
    guard.text(retire.stdout, retire.stderr);
    expect(retire.code, retire.stdout + retire.stderr).toBe(3);
    const gate = jsonOf<{ retired: boolean; blockers: string[]; stores: { storeId: string; underKek: number; notYetMoved: number; failedNotMoved: number }[] }>(retire);
    expect(gate.retired).toBe(false);
    // The three rows block, by store; the tables drained by the other tests block nothing.
    expect(gate.stores.filter((st) => st.underKek + st.notYetMoved + st.failedNotMoved > 0)).toEqual([{ storeId: 'pg:vault', underKek: 0, notYetMoved: 0, failedNotMoved: 3 }]);
    expect(gate.blockers.join('\n')).toMatch(/pg:vault.*3/);
  });

  it('a range is read when it runs: rows that left the source KEK after the plan are not touched, rows that entered it are moved, planned follows', async () => {
    const deks = await rowTable(pipe.db.pool, 'drift', 300, v1);
    for (const d of deks.values()) guard.secret(d);
    // Rows 251-260 say b@3 when the plan runs (their DEKs are under b@1 all along).
    await pipe.db.pool.query(`UPDATE drift SET kek_version = '3' WHERE id BETWEEN 251 AND 260`);
    // Created without --start: the scheduler plans it, no worker takes a batch yet.
    const created = await rewrapCli(pipe, ['campaign', 'create', '--spec', await specFile(pipe, spec('drift b1 to b2', 'drift', 'b@1', 'b@2', { batchSize: 100 })), '--json']);
    expect(created.code, created.stderr).toBe(0);
    const id = jsonOf<{ id: string }>(created).id;
    await pipe.waitFor(id, 'planned', (p) => p.planDone && p.planned === 290, 60_000);
    // The application meanwhile: rows 101-130 leave b@1 (rewritten under b@3 by another path) and
    // rows 251-260 enter it (their KEK columns corrected), inside ranges the plan cut.
    await pipe.db.pool.query(`UPDATE drift SET kek_version = '3', wrapped_dek = $1 WHERE id BETWEEN 101 AND 130`, [Buffer.alloc(40, 7)]);
    await pipe.db.pool.query(`UPDATE drift SET kek_version = '1' WHERE id BETWEEN 251 AND 260`);
    const { rows: before } = await pipe.db.pool.query<{ id: string; wrapped_dek: Buffer }>('SELECT id::text, wrapped_dek FROM drift WHERE id BETWEEN 101 AND 130 ORDER BY id');
    const started = await rewrapCli(pipe, ['campaign', 'start', id]);
    expect(started.code, started.stderr).toBe(0);
    const p = await completed(id);
    // The rows that left b@1 were not read, so not written: byte for byte as the application left them.
    const { rows: after } = await pipe.db.pool.query<{ id: string; wrapped_dek: Buffer }>('SELECT id::text, wrapped_dek FROM drift WHERE id BETWEEN 101 AND 130 ORDER BY id');
    expect(after).toEqual(before);
    expect(await rowsAt(pipe.db.pool, 'drift', 'b', '1')).toBe(0);
    expect(await rowsAt(pipe.db.pool, 'drift', 'b', '2')).toBe(270);
    const { rows: moved } = await pipe.db.pool.query<{ id: string; wrapped_dek: Buffer }>(`SELECT id::text, wrapped_dek FROM drift WHERE kek_version = '2'`);
    for (const r of moved) expect(aesUnwrap(v2.material, r.wrapped_dek).equals(deks.get(r.id)!), `row ${r.id}`).toBe(true);
    expect(moved.map((r) => Number(r.id)).filter((n) => n >= 251 && n <= 260)).toHaveLength(10);
    expect({ planned: p.planned, rewrapped: p.rewrapped, skipped: p.skipped, failed: p.failed, remaining: p.remaining }).toEqual({ planned: 270, rewrapped: 270, skipped: 0, failed: 0, remaining: 0 });
  });

  it('a commit repeated for the same claim changes nothing (invariant 2)', async () => {
    await rowTable(pipe.db.pool, 'repeat', 10, v1);
    const id = await create(spec('repeat b1 to b3', 'repeat', 'b@1', 'b@3', { batchSize: 10 }));
    await completed(id);
    const before = await pipe.progress(id);
    // Take the done batch's lease back by hand, as a late duplicate of its worker would hold it.
    const { rows } = await pipe.db.pool.query<{ batch_no: number; lease_owner: string; attempts: number }>(
      'SELECT batch_no, lease_owner, attempts FROM rewrap_batches WHERE campaign_id = $1 AND rewrapped > 0 ORDER BY batch_no LIMIT 1',
      [id],
    );
    const b = rows[0]!;
    const again = await commitBatchRange(pipe.db.pool, {
      campaignId: id,
      batchNo: b.batch_no,
      owner: b.lease_owner,
      attempt: b.attempts,
      final: true,
      outcomes: [{ storeId: 'pg:repeat', itemKey: '1', outcome: 'rewrapped', from: { id: 'b', version: '1' }, to: { id: 'b', version: '3' } }],
    });
    expect(again).toMatchObject({ status: 'committed', changed: 0 });
    expect(await pipe.progress(id)).toMatchObject({ planned: before.planned, rewrapped: before.rewrapped, remaining: 0 });
    expect(await claimBatch(pipe.db.pool, { campaignId: id, batchNo: b.batch_no, owner: 'late', leaseMs: 1000 })).toEqual({ status: 'done' });
  });

  it('workers SIGKILLed mid-batch: every row still moves to its original DEK, none is written twice, the counts stay consistent', async () => {
    const deks = await rowTable(pipe.db.pool, 'ledger', 6_000, v1);
    for (const d of deks.values()) guard.secret(d);
    const id = await create(spec('ledger b1 to b2', 'ledger', 'b@1', 'b@2', { batchSize: 100, kmsRequestsPerSecond: 1_000 }));
    for (const at of [1_000, 3_000]) {
      await pipe.waitFor(id, `${at} rewrapped`, (p) => p.rewrapped >= at, 60_000);
      const victim = pipe.workers.shift()!;
      victim.child.kill('SIGKILL');
      await pipe.startWorker();
    }
    const p = await completed(id);

    const rows = await unwrapAll(pipe.db.pool, 'ledger', [v2]);
    expect(rows.size).toBe(6_000);
    for (const [rowId, r] of rows) expect(r.dek.equals(deks.get(rowId)!), `row ${rowId}`).toBe(true);
    // A batch taken over after a kill reads only the rows still under b@1: none is written again.
    expect(await rowsWrittenTwice(pipe.db.pool, 'ledger')).toEqual([]);
    // Rows a killed worker wrote without committing are not counted (invariant 1), and nothing is counted twice.
    expect(p.rewrapped).toBeLessThanOrEqual(6_000);
    expect(p.failed).toBe(0);
    expect(p.planned).toBe(6_000);
    expect(p.planned).toBe(p.rewrapped + p.skipped);
    expect(p.remaining).toBe(0);
    // What a killed worker wrote is skipped as unconfirmed: the only skips here.
    const { rows: unconfirmed } = await pipe.db.pool.query<{ n: number }>('SELECT coalesce(sum(unconfirmed), 0)::int AS n FROM rewrap_batches WHERE campaign_id = $1', [id]);
    expect(unconfirmed[0]!.n).toBe(p.skipped);
    // The kills hit batches in hand: some were taken over by a second claim.
    const { rows: retried } = await pipe.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM rewrap_batches WHERE campaign_id = $1 AND attempts > 1', [id]);
    expect(retried[0]!.n).toBeGreaterThan(0);
  });

  it('a claim that wrote rows and lost its commit: the next claim no longer reads them, and they are counted skipped and moved-unconfirmed, planned kept', async () => {
    const deks = await rowTable(pipe.db.pool, 'lost', 300, v1);
    for (const d of deks.values()) guard.secret(d);
    const created = await rewrapCli(pipe, ['campaign', 'create', '--spec', await specFile(pipe, spec('lost b1 to b2', 'lost', 'b@1', 'b@2', { batchSize: 100 })), '--json']);
    expect(created.code, created.stderr).toBe(0);
    const id = jsonOf<{ id: string }>(created).id;
    await pipe.waitFor(id, 'planned', (p) => p.planDone && p.planned === 300, 60_000);
    // A first claim of the first range (as claimBatch takes it: attempts + 1, a lease) whose worker
    // wrote rows 1-40 under b@2 and died before its commit.
    const { rows: first } = await pipe.db.pool.query<{ batch_no: number }>(
      `UPDATE rewrap_batches SET lease_owner = 'died', lease_until = now() + interval '2 seconds', attempts = attempts + 1
        WHERE campaign_id = $1 AND lo IS NULL RETURNING batch_no`, [id]);
    expect(first).toHaveLength(1);
    for (let row = 1; row <= 40; row++) {
      await pipe.db.pool.query(`UPDATE lost SET kek_version = '2', wrapped_dek = $2 WHERE id = $1`, [row, aesWrap(v2.material, deks.get(String(row))!)]);
    }
    const started = await rewrapCli(pipe, ['campaign', 'start', id]);
    expect(started.code, started.stderr).toBe(0);
    const p = await completed(id);

    const rows = await unwrapAll(pipe.db.pool, 'lost', [v2]);
    expect(rows.size).toBe(300);
    for (const [rowId, r] of rows) expect(r.dek.equals(deks.get(rowId)!), `row ${rowId}`).toBe(true);
    expect(await rowsWrittenTwice(pipe.db.pool, 'lost')).toEqual([]);
    // The plan's 300 stay planned: the 40 the lost claim wrote are skipped (unconfirmed), none is lost from the counts.
    expect({ planned: p.planned, rewrapped: p.rewrapped, skipped: p.skipped, failed: p.failed, remaining: p.remaining }).toEqual({
      planned: 300, rewrapped: 260, skipped: 40, failed: 0, remaining: 0,
    });
    const { rows: batch } = await pipe.db.pool.query('SELECT attempts, rewrapped, skipped, unconfirmed FROM rewrap_batches WHERE campaign_id = $1 AND batch_no = $2', [id, first[0]!.batch_no]);
    expect(batch[0]).toEqual({ attempts: 2, rewrapped: 60, skipped: 40, unconfirmed: 40 });
    // The inventory counts them under the target, as the per-item form would after reading them.
    expect(await inventoryByKek(pipe.db.pool, 'pg:lost')).toEqual([{ storeId: 'pg:lost', kekId: 'b', kekVersion: '2', materialId: null, items: 300 }]);

    // The exposure report of b@1 lists the range's 40 as moved-unconfirmed, and counts them.
    const exposureOut = join(pipe.dir, 'lost-exposure.jsonl');
    const exposure = await rewrapCli(pipe, ['campaign', 'report', id, '--kind', 'exposure', '--out', exposureOut, '--json']);
    guard.text(exposure.stdout, exposure.stderr);
    expect(exposure.code, exposure.stderr).toBe(0);
    expect(jsonOf<{ totals: Record<string, number> }>(exposure).totals).toMatchObject({ moved: 260, movedUnconfirmed: 40, exposed: 0, underKek: 300 });
    const lines = (await readFile(exposureOut, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { status: string; items: number | null; reason: string | null });
    expect(lines.filter((l) => l.status === 'moved-unconfirmed')).toMatchObject([{ items: 40, reason: 'batch-retried' }]);
  });

  it('kek retire passes once a batch-form campaign drained the KEK: the sample it re-reads comes from the batches', async () => {
    await rowTable(pipe.db.pool, 'drained', 1_000, c1);
    const id = await create(spec('drained c1 to c2', 'drained', 'c@1', 'c@2', { batchSize: 100 }));
    await completed(id);
    const retire = await rewrapCli(pipe, ['kek', 'retire', 'c@1', '--grace', '0', '--json']);
    guard.text(retire.stdout, retire.stderr);
    expect(retire.code, retire.stdout + retire.stderr).toBe(0);
    const gate = jsonOf<{ retired: boolean; sample: { checked: number; failed: unknown[] } }>(retire);
    expect(gate.retired).toBe(true);
    expect(gate.sample.checked).toBeGreaterThan(0);
    expect(gate.sample.failed).toEqual([]);
    // Retired means disabled in the keyring; nothing was left under it.
    expect(loadKeyringFile(keyringFile).find((e) => e.id === 'c' && e.version === '1')?.state).toBe('disabled');
    expect(await rowsAt(pipe.db.pool, 'drained', 'c', '1')).toBe(0);
  });

  it('a key map campaign: each row moves by its own entry, batches that hold both tenants keep a sample of each, and each tenant KEK retires on its own samples', async () => {
    /* Ids 1-150 under t1, 151-300 under t2: batches of 100 cut one range holding both. */
    const deks = new Map([...(await rowTable(pipe.db.pool, 'tenants', 150, t1a)), ...(await insertRows(pipe.db.pool, 'tenants', 150, t2a, 151))]);
    const id = await create({
      name: 'tenants key map', sources: [rowSource('tenants')], provider: { type: 'local', keyringFile },
      keyMap: [{ from: 't1@1', to: 't1@2' }, { from: 't2@1', to: 't2@2' }], options: { batchSize: 100, concurrency: 8 },
    });
    await completed(id);
    expect(await ledgerRows(id)).toMatchObject({ items: 0, form: 'batches' });
    const rows = await unwrapAll(pipe.db.pool, 'tenants', [t1a, t1b, t2a, t2b]);
    for (const [key, dek] of deks) {
      expect(rows.get(key)?.kek, `row ${key}`).toBe(Number(key) <= 150 ? 't1@2' : 't2@2');
      expect(rows.get(key)!.dek.equals(dek), `row ${key} keeps its DEK`).toBe(true);
    }
    const { rows: mixed } = await pipe.db.pool.query<{ froms: string[] }>(
      `SELECT array(SELECT DISTINCT s->'from'->>'id' FROM jsonb_array_elements(sample) s ORDER BY 1) AS froms FROM rewrap_batches WHERE campaign_id = $1 AND lo::bigint < 150 AND hi::bigint > 151`,
      [id],
    );
    expect(mixed.map((r) => r.froms)).toEqual([['t1', 't2']]);
    /* Batch n keeps up to 64/n moved items per source KEK (batch-samples.ts): 64 of batch 1's 100 t1 rows, 32 + 32 of batch 2's, 22 of batch 3's t2 rows. */
    const { rows: kept } = await pipe.db.pool.query<{ batch_no: number; from: string; n: number }>(
      `SELECT batch_no, s->'from'->>'id' AS from, count(*)::int AS n FROM rewrap_batches, jsonb_array_elements(sample) s WHERE campaign_id = $1 GROUP BY 1, 2 ORDER BY 1, 2`,
      [id],
    );
    expect(kept).toEqual([{ batch_no: 1, from: 't1', n: 64 }, { batch_no: 2, from: 't1', n: 32 }, { batch_no: 2, from: 't2', n: 32 }, { batch_no: 3, from: 't2', n: 22 }]);
    for (const kek of ['t1@1', 't2@1']) {
      const retire = await rewrapCli(pipe, ['kek', 'retire', kek, '--grace', '0', '--json']);
      guard.text(retire.stdout, retire.stderr);
      expect(retire.code, retire.stdout + retire.stderr).toBe(0);
      const gate = jsonOf<{ retired: boolean; sample: { asked: number; checked: number; failed: unknown[] } }>(retire);
      /* Each KEK has more samples than the default --sample 50 (96 and 54): all 50 re-read. */
      expect(gate.sample, kek).toMatchObject({ asked: 50, checked: 50 });
      expect(gate.sample.failed, kek).toEqual([]);
    }
  });

  it('refuses what the batch form cannot take (S3 sources), naming the field and the way out', async () => {
    const r = await rewrapCli(pipe, [
      'campaign', 'create', '--json', '--spec',
      await specFile(pipe, { ...spec('mixed', 'accounts', 'b@2', 'b@3'), sources: [rowSource('accounts'), { type: 's3', bucket: 'some-bucket' }] }),
    ]);
    guard.text(r.stdout, r.stderr);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('sources[1] is s3');
    expect(r.stderr).toContain('REWRAP_LEDGER_FORM');
  });

  it('no DEK or KEK bytes in any process log or CLI output (invariant 5)', () => {
    guard.text(pipe.logs());
    expect(guard.linesSeen).toBeGreaterThan(0);
    expect(guard.findLeaks()).toEqual([]);
  });
});
