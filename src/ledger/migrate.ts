/**
 * Applies pending migrations (src/ledger/migrations/NNNNNN.sql) in order, all in one transaction,
 * under an advisory lock: idempotent, and safe when several processes start at once (the others
 * wait for the lock, then find nothing pending). Applied migrations are recorded in rewrap_migrations.
 */
import type pg from 'pg';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { withTransaction } from './transaction.ts';
import { XACT_LOCK_SQL, lockPurpose } from './lock-keys.ts';

const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url));
const MIGRATION_FILE = /^(\d{6})\.sql$/;

export interface Migration {
  id: number;
  file: string;
  sql: string;
}

export async function loadMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => MIGRATION_FILE.test(f)).sort();
  const migrations: Migration[] = [];
  for (const file of files) {
    const id = Number(MIGRATION_FILE.exec(file)![1]);
    if (id !== migrations.length + 1) throw new Error(`ledger migrations: expected ${String(migrations.length + 1).padStart(6, '0')}.sql next in ${dir}, found ${file}`);
    migrations.push({ id, file, sql: await readFile(`${dir}/${file}`, 'utf8') });
  }
  return migrations;
}

/** Returns the ids of the migrations this call applied (empty when the schema was up to date). */
export async function migrate(pool: pg.Pool): Promise<number[]> {
  const migrations = await loadMigrations();
  return withTransaction(pool, async (client) => {
    await client.query(XACT_LOCK_SQL, [lockPurpose.migrate]);
    await client.query(`CREATE TABLE IF NOT EXISTS rewrap_migrations (
      id int PRIMARY KEY, file text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const { rows } = await client.query<{ id: number }>('SELECT id FROM rewrap_migrations');
    const applied = new Set(rows.map((r) => r.id));
    const known = new Set(migrations.map((m) => m.id));
    const unknown = [...applied].filter((id) => !known.has(id));
    if (unknown.length > 0) {
      throw new Error(`ledger migrations: the database has migration(s) ${unknown.join(', ')} that this version of rewrap does not know; upgrade rewrap`);
    }
    const done: number[] = [];
    for (const m of migrations) {
      if (applied.has(m.id)) continue;
      try {
        await client.query(m.sql);
      } catch (err) {
        throw new Error(`ledger migration ${m.file} failed`, { cause: err });
      }
      await client.query('INSERT INTO rewrap_migrations (id, file) VALUES ($1, $2)', [m.id, m.file]);
      done.push(m.id);
    }
    return done;
  });
}
