/**
 * Issue 13, point 9, in one process: a ledger transaction whose session the server ends (57P01,
 * as on a restart) fails with that error instead of ending the process with an unhandled
 * 'error' event on the checked-out client, and the pool carries on with a new connection.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { withTransaction } from '../src/ledger/index.ts';
import { freshSchema, type TestSchema } from './harness/pg.ts';
import { DATABASE_URL } from './harness/env.ts';

let db: TestSchema;

beforeAll(async () => {
  db = await freshSchema('txn_terminated', 2);
  db.pool.on('error', () => undefined); // idle clients of this pool may see the termination too
});

afterAll(async () => {
  await db?.drop();
});

async function terminate(pid: number): Promise<void> {
  const admin = new pg.Client({ connectionString: DATABASE_URL });
  await admin.connect();
  try {
    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
  } finally {
    await admin.end();
  }
}

describe('withTransaction when the server ends the session', () => {
  it('the transaction fails with the server error, the process lives on, and the next one runs on a new connection', async () => {
    let terminatedPid = 0;
    const failed = withTransaction(db.pool, async (client) => {
      const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      terminatedPid = rows[0]!.pid;
      await terminate(terminatedPid);
      /* Whether this query meets the FATAL message or a closed socket, pg also emits 'error' on
         the checked-out client: without a listener, that ends the process. */
      await client.query('SELECT 1');
    });
    await expect(failed).rejects.toThrow(/terminating connection|Connection terminated|not queryable/);
    const next = await withTransaction(db.pool, async (client) => (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid);
    expect(next).not.toBe(terminatedPid);
  });
});
