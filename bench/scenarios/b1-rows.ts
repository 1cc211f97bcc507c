/**
 * B1: Postgres rows under a local keyring. (a) rewrap end to end (scheduler + 2 workers, default
 * settings: the batch ledger form) against (b) the store's raw limit (the same conditional
 * UPDATE ... FROM unnest, precomputed values, no queue, no crypto, same batch size and
 * concurrency), (c) the naive one-row-at-a-time loop and (e) the hand-written keyset loop.
 * (f): (a) again with the per-item ledger form (REWRAP_LEDGER_FORM=items, the only form before
 * 2026-12-07), on a fresh table of as many rows.
 */
import { createEnvelopeTable } from '../../src/stores/pg-table-schema.ts';
import { insertRows, type RowKek } from '../../dev/reference/row-client.ts';
import { aesUnwrap } from '../../dev/reference/s3ec-client.ts';
import type pg from 'pg';
import pLimit from 'p-limit';
import { Deployment, measureCampaign, round } from '../lib/deployment.ts';
import { runDrivers, splitRange } from '../lib/drivers.ts';
import { benchKeyring, scenarioEnv, target, type BenchContext, type ScenarioEnv, type ScenarioResult } from '../lib/context.ts';

export const ROW_BATCH = 500;
export const ROW_CONCURRENCY = 16;
/** REWRAP_WORKER_JOBS default: batches per worker process at once. */
export const JOBS_PER_WORKER = 2;

export function rowSpec(name: string, table: string, keyringFile: string, from: string, to: string): unknown {
  return {
    name,
    sources: [{ type: 'pg', table, idColumn: 'id', wrappedKeyColumn: 'wrapped_dek', kekIdColumn: 'kek_id', kekVersionColumn: 'kek_version' }],
    provider: { type: 'local', keyringFile },
    from,
    to,
    options: { batchSize: ROW_BATCH, concurrency: ROW_CONCURRENCY },
  };
}

/** Inserts rows 1..n under `kek`; keeps the DEKs of a sample (every 997th row) for verification. */
export async function insertRowFixture(pool: pg.Pool, table: string, n: number, kek: RowKek): Promise<Map<string, Buffer>> {
  await createEnvelopeTable(pool, table);
  const sample = new Map<string, Buffer>();
  /* Two chunks at once: this process wraps one while Postgres stores the other. */
  const limit = pLimit(2);
  const chunks = [];
  for (let first = 1; first <= n; first += 50_000) chunks.push(first);
  await Promise.all(
    chunks.map((first) =>
      limit(async () => {
        const deks = await insertRows(pool, table, Math.min(50_000, n - first + 1), kek, first);
        for (const [id, dek] of deks) if (Number(id) % 997 === 1) sample.set(id, dek);
      }),
    ),
  );
  await pool.query(`ANALYZE ${table}`);
  return sample;
}

/** Every sampled row unwraps under `kek` to its original DEK. Returns the mismatches. */
export async function verifyRowSample(pool: pg.Pool, table: string, kek: RowKek, sample: Map<string, Buffer>): Promise<string[]> {
  const { rows } = await pool.query<{ id: string; wrapped_dek: Buffer; kek_version: string }>(`SELECT id::text, wrapped_dek, kek_version FROM ${table} WHERE id = ANY($1::bigint[])`, [[...sample.keys()]]);
  const bad: string[] = [];
  for (const r of rows) {
    try {
      if (r.kek_version !== kek.version || !aesUnwrap(kek.material, r.wrapped_dek).equals(sample.get(r.id)!)) bad.push(`row ${r.id}: wrong DEK or version ${r.kek_version}`);
    } catch {
      bad.push(`row ${r.id}: does not unwrap under ${kek.id}@${kek.version}`);
    }
  }
  if (rows.length !== sample.size) bad.push(`${sample.size - rows.length} sampled rows missing`);
  return bad;
}

export async function runB1(ctx: BenchContext): Promise<ScenarioResult> {
  const started = performance.now();
  const n = ctx.quick ? 10_000 : 1_000_000;
  const rawRows = Math.min(n, ctx.quick ? 10_000 : 200_000);
  const naiveRows = ctx.quick ? 1_000 : 5_000;
  const workers = 2;
  const env = await scenarioEnv(ctx, 'b1');
  const table = 'envelopes';
  try {
    const { keks, file } = await benchKeyring(env.dir, 'bench', 3);
    const [v1, v2, v3] = keks as [RowKek, RowKek, RowKek];
    ctx.say(`  B1: inserting ${n.toLocaleString('en')} rows under bench@1 ...`);
    let t = performance.now();
    const sample = await insertRowFixture(env.db.pool, table, n, v1);
    ctx.say(`  B1: inserted in ${((performance.now() - t) / 1000).toFixed(1)} s`);

    ctx.say(`  B1 (b): raw conditional UPDATE ... FROM unnest on ${rawRows.toLocaleString('en')} rows, ${workers} processes x ${JOBS_PER_WORKER} batches of ${ROW_BATCH} in flight`);
    const raw = await runDrivers(
      splitRange(1, rawRows + 1, workers).map((ids, i) => ({ mode: 'pg-update' as const, url: env.db.url(`driver-${i}`), table, ids, batchSize: ROW_BATCH, concurrency: JOBS_PER_WORKER })),
      env.meter,
    );
    if (raw.ok !== rawRows) throw new Error(`B1 (b): ${raw.ok} of ${rawRows} rows written`);
    ctx.say(`    ${raw.itemsPerSec.toLocaleString('en')} rows/s`);

    await vacuum(env.db.pool, table);
    ctx.say(`  B1 (a): rewrap end to end (default settings: the batch ledger form), scheduler + ${workers} workers, bench@1 -> bench@2`);
    const d = await Deployment.start({ db: env.db, redisUrl: env.redis.url, prefix: env.prefix, dir: env.dir, meter: env.meter }, workers);
    let e2e;
    try {
      e2e = await measureCampaign(d, env.meter, rowSpec('bench B1', table, file, 'bench@1', 'bench@2'), n, 30 * 60_000, ctx.say);
    } finally {
      await d.stop();
    }
    ctx.say(`    ${e2e.itemsPerSec.toLocaleString('en')} rows/s (${e2e.seconds} s; all items done at ${e2e.itemsDoneSeconds} s)`);
    const bad = await verifyRowSample(env.db.pool, table, v2, sample);
    if (bad.length) throw new Error(`B1: verification failed:\n${bad.slice(0, 10).join('\n')}`);

    const ledgerBytes = await campaignLedgerBytes(env.db.pool, e2e.campaignId);
    /* A table of its own: the per-item campaign leaves an inventory row per item of its store, which a later batch commit over that store then keeps current (commitBatchRange). */
    const fTable = 'envelopes_f';
    ctx.say(`  B1 (f): inserting ${n.toLocaleString('en')} rows under bench@2 into ${fTable} ...`);
    const fSample = await insertRowFixture(env.db.pool, fTable, n, v2);
    ctx.say(`  B1 (f): rewrap end to end with the per-item ledger form (REWRAP_LEDGER_FORM=items), scheduler + ${workers} workers, bench@2 -> bench@3`);
    const fd = await Deployment.start({ db: env.db, redisUrl: env.redis.url, prefix: `${env.prefix}f`, dir: env.dir, meter: env.meter, ledgerForm: 'items' }, workers);
    let items;
    try {
      items = await measureCampaign(fd, env.meter, rowSpec('bench B1 (f)', fTable, file, 'bench@2', 'bench@3'), n, 30 * 60_000, ctx.say);
    } finally {
      await fd.stop();
    }
    ctx.say(`    ${items.itemsPerSec.toLocaleString('en')} rows/s (${items.seconds} s; all items done at ${items.itemsDoneSeconds} s)`);
    const fBad = await verifyRowSample(env.db.pool, fTable, v3, fSample);
    if (fBad.length) throw new Error(`B1 (f): verification failed:\n${fBad.slice(0, 10).join('\n')}`);
    const itemLedgerBytes = await campaignLedgerBytes(env.db.pool, items.campaignId);

    await vacuum(env.db.pool, table);
    ctx.say(`  B1 (c): naive loop (SELECT one row, rewrap, UPDATE), ${naiveRows.toLocaleString('en')} rows`);
    t = performance.now();
    const naive = await runDrivers(
      [{ mode: 'pg-naive', url: env.db.url('naive'), table, ids: [1, naiveRows + 1], fromKek: rawKek(v2), toKek: rawKek(v3) }],
      env.meter,
    );
    if (naive.ok !== naiveRows) throw new Error(`B1 (c): ${naive.ok} of ${naiveRows} rows rewrapped`);
    ctx.say(`    ${naive.itemsPerSec.toLocaleString('en')} rows/s`);

    /* (e): the loop a careful user writes by hand, on rows still under bench@2 after (c): 1 client, then 2 (the pipeline's 2 workers). */
    const loopRows = ctx.quick ? 4_000 : 200_000;
    const loop = async (clients: number, from: number) => {
      ctx.say(`  B1 (e): hand-written loop (keyset page of 1,000, rewrap in process, one batched conditional UPDATE per page), ${clients} client(s), ${loopRows.toLocaleString('en')} rows`);
      const m = await runDrivers(
        splitRange(from, from + loopRows, clients).map((ids, i) => ({ mode: 'pg-loop' as const, url: env.db.url(`loop-${clients}-${i}`), table, ids, page: 1000, fromKek: rawKek(v2), toKek: rawKek(v3) })),
        env.meter,
      );
      if (m.ok !== loopRows) {
        const { rows } = await env.db.pool.query(`SELECT kek_id, kek_version, count(*)::int AS n FROM ${table} WHERE id >= $1 AND id < $2 GROUP BY 1, 2 ORDER BY 1, 2`, [from, from + loopRows]);
        throw new Error(`B1 (e): ${m.ok} of ${loopRows} rows rewrapped by ${clients} client(s); the range holds ${JSON.stringify(rows)}`);
      }
      ctx.say(`    ${m.itemsPerSec.toLocaleString('en')} rows/s`);
      return m;
    };
    const loop1 = await loop(1, naiveRows + 1);
    const loop2 = await loop(2, naiveRows + 1 + loopRows);
    const loopSample = new Map([...sample].filter(([id]) => Number(id) > naiveRows && Number(id) <= naiveRows + 2 * loopRows));
    const loopBad = await verifyRowSample(env.db.pool, table, v3, loopSample);
    if (loopBad.length) throw new Error(`B1 (e): verification failed:\n${loopBad.slice(0, 10).join('\n')}`);

    const ab = round(e2e.itemsPerSec / raw.itemsPerSec);
    const ac = round(e2e.itemsPerSec / naive.itemsPerSec, 1);
    const ae2 = round(e2e.itemsPerSec / loop2.itemsPerSec);
    return {
      id: 'B1',
      title: 'Postgres rows, local keyring',
      params: { rows: n, rawRows, naiveRows, workers, jobsPerWorker: JOBS_PER_WORKER, batchSize: ROW_BATCH, concurrency: ROW_CONCURRENCY, loopRows, loopPage: 1000 },
      phases: { a_endToEnd: { ...e2e, ledgerBytes }, b_storeRaw: raw, c_naive: naive, e_loop1: loop1, e_loop2: loop2, f_itemLedger: { ...items, ledgerBytes: itemLedgerBytes }, verifiedSample: sample.size },
      ratios: {
        'a/b': ab, 'a/c': ac, 'a/e(2 clients)': ae2, 'e(1 client)/b': round(loop1.itemsPerSec / raw.itemsPerSec),
        'a/f': round(e2e.itemsPerSec / items.itemsPerSec), 'a ledger bytes/item': round(ledgerBytes / n, 3), 'f ledger bytes/item': round(itemLedgerBytes / n, 3),
      },
      targets: {
        'a/b': target(ab, '>=', 0.6), 'a/c': target(ac, '>=', 10), 'a/e(2 clients)': target(ae2, '>=', 1),
        'a ledger bytes/item': target(round(ledgerBytes / n, 3), '<=', 2),
      },
      notes: [],
      seconds: round((performance.now() - started) / 1000, 1),
    };
  } finally {
    await env.close();
  }
}

/**
 * Every phase starts on a vacuumed table: (a) rewrites all its rows, and the 1,000,000 dead
 * tuples it leaves cost the next phase an extra heap visit per row until autovacuum has run,
 * which it did in some runs and not in others ((e) measured 21,215 rows/s with 2 clients on
 * 12-08 where it had measured 51,000 to 61,000).
 */
async function vacuum(pool: pg.Pool, table: string): Promise<void> {
  await pool.query(`VACUUM (ANALYZE) ${table}`);
}

/** Bytes the campaign's ledger rows take (batch rows and exceptions; item rows if any), as Postgres stores them. */
async function campaignLedgerBytes(pool: pg.Pool, campaignId: string): Promise<number> {
  const { rows } = await pool.query<{ n: string }>(
    `SELECT (SELECT coalesce(sum(pg_column_size(b.*)), 0) FROM rewrap_batches b WHERE b.campaign_id = $1)
          + (SELECT coalesce(sum(pg_column_size(e.*)), 0) FROM rewrap_batch_exceptions e WHERE e.campaign_id = $1)
          + (SELECT coalesce(sum(pg_column_size(i.*)), 0) FROM rewrap_campaign_items i WHERE i.campaign_id = $1) AS n`,
    [campaignId],
  );
  return Number(rows[0]!.n);
}

export const rawKek = (k: RowKek) => ({ id: k.id, version: k.version, material: k.material.toString('base64') });

export type { ScenarioEnv };
