/**
 * Envelope-encrypted rows for the pipeline tests: a table of rows under a keyring KEK, a log of
 * every UPDATE the table receives (to prove "written once" and "written nothing after X"), and
 * counts read from the STORE (the table itself), never from the ledger.
 */
import type pg from 'pg';
import { expect } from 'vitest';
import { createEnvelopeTable } from '../../src/stores/pg-table-schema.ts';
import { inventoryByKek } from '../../src/ledger/index.ts';
import { insertRows, unwrapAll, type RowKek } from '../../dev/reference/row-client.ts';

/** The campaign-spec source for a table made by `rowTable`. */
export function rowSource(table: string) {
  return { type: 'pg', table, idColumn: 'id', wrappedKeyColumn: 'wrapped_dek', kekIdColumn: 'kek_id', kekVersionColumn: 'kek_version' } as const;
}

/** Creates `table` with rows 1..n under `kek`, and a write log `<table>_writes`. Returns the DEKs by id. */
export async function rowTable(pool: pg.Pool, table: string, n: number, kek: RowKek): Promise<Map<string, Buffer>> {
  await createEnvelopeTable(pool, table);
  const deks = await insertRows(pool, table, n, kek);
  await logRowWrites(pool, table);
  return deks;
}

/** Adds the write log `<table>_writes` (one row per UPDATE of a row, by anyone) to an envelope table. */
export async function logRowWrites(pool: pg.Pool, table: string): Promise<void> {
  await pool.query(`
    CREATE TABLE ${table}_writes (id bigint, kek_version text, at timestamptz DEFAULT clock_timestamp());
    CREATE FUNCTION ${table}_log_write() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO ${table}_writes (id, kek_version) VALUES (NEW.id, NEW.kek_version); RETURN NEW; END $$;
    CREATE TRIGGER ${table}_writes AFTER UPDATE ON ${table} FOR EACH ROW EXECUTE FUNCTION ${table}_log_write();`);
}

/** Rows of `table` whose KEK columns say `kekId@version`: counted in the store. */
export async function rowsAt(pool: pg.Pool, table: string, kekId: string, version: string): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE kek_id = $1 AND kek_version = $2`, [kekId, version]);
  return rows[0]!.n;
}

/** Ids of rows updated more than once (by anyone). */
export async function rowsWrittenTwice(pool: pg.Pool, table: string): Promise<string[]> {
  const { rows } = await pool.query<{ id: string }>(`SELECT id::text FROM ${table}_writes GROUP BY id HAVING count(*) > 1 ORDER BY id`);
  return rows.map((r) => r.id);
}

/** How many updates the table received, and when the last one happened (database clock). */
export async function rowWriteStats(pool: pg.Pool, table: string): Promise<{ writes: number; lastAt: Date | null }> {
  const { rows } = await pool.query<{ n: number; last: Date | null }>(`SELECT count(*)::int AS n, max(at) AS last FROM ${table}_writes`);
  return { writes: rows[0]!.n, lastAt: rows[0]!.last };
}

/** What a finished campaign's progress says (the ledger's side of the check below). */
export interface LedgerTotals {
  planned: number;
  failed: number;
  rewrapped: number;
  skipped: number;
  remaining: number;
}

/**
 * Nothing lost, effects once (invariants 1, 2, 4), after a campaign moved every row of `table`
 * (made by `rowTable`) from `<to.id>@<from>` to `to`: the store, read with independent code, has
 * every row under `to`, each unwrapping (with `to` only) to its original DEK; the ledger's counts
 * and inventory agree exactly; and no row was written twice.
 */
export async function expectEveryRowMovedOnce(pool: pg.Pool, table: string, deks: Map<string, Buffer>, to: RowKek, from: string, p: LedgerTotals): Promise<void> {
  const rows = await unwrapAll(pool, table, [to]);
  expect(rows.size).toBe(deks.size);
  for (const [id, r] of rows) expect(r.dek.equals(deks.get(id)!), `row ${id}`).toBe(true);
  expect(await rowsAt(pool, table, to.id, to.version)).toBe(deks.size);
  expect(p.planned).toBe(deks.size);
  expect(p.failed).toBe(0);
  expect(p.rewrapped + p.skipped).toBe(deks.size);
  expect(p.remaining).toBe(0);
  const inv = await inventoryByKek(pool);
  expect(inv.filter((r) => r.kekId === to.id && r.kekVersion === to.version).reduce((a, r) => a + r.items, 0)).toBe(deks.size);
  expect(inv.filter((r) => r.kekId === to.id && r.kekVersion === from)).toEqual([]);
  expect(await rowsWrittenTwice(pool, table)).toEqual([]);
}
