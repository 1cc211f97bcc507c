/**
 * A fresh Postgres schema per test file: vitest runs files in parallel against one server, so
 * each file works in its own schema (search_path) and drops it afterwards.
 */
import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { DATABASE_URL } from './env.ts';

export interface TestSchema {
  pool: pg.Pool;
  schema: string;
  /** A connection string whose sessions use the schema (for child processes). */
  url: string;
  drop(): Promise<void>;
}

export async function freshSchema(label: string, max = 8, serverUrl = DATABASE_URL): Promise<TestSchema> {
  const schema = `t_${label.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.end();
  const url = withSearchPath(serverUrl, schema);
  const pool = new pg.Pool({ connectionString: url, max });
  return {
    pool,
    schema,
    url,
    async drop() {
      await pool.end();
      const c = new pg.Client({ connectionString: serverUrl });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await c.end();
    },
  };
}

function withSearchPath(url: string, schema: string): string {
  const u = new URL(url);
  u.searchParams.set('options', `-c search_path=${schema}`);
  return u.toString();
}
