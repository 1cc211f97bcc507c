/**
 * The Postgres store checks the fence with a connection in hand, right before its UPDATE leaves
 * (invariant 8), not before waiting for a free connection of the pool: a lease that runs out
 * while the write waits for a connection stops the UPDATE, and no row changes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { freshSchema, type TestSchema } from './harness/pg.ts';
import { PgTableStore } from '../src/stores/pg-table-store.ts';
import { createEnvelopeTable } from '../src/stores/pg-table-schema.ts';
import { WriteFencedError, type ReadResult } from '../src/stores/envelope-store.ts';
import { wrappedDigest } from '../src/envelope/stamp.ts';

let db: TestSchema;
let pool: pg.Pool;
beforeAll(async () => {
  db = await freshSchema('pg_write_fence');
  pool = new pg.Pool({ connectionString: db.url, max: 1 });
});
afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

describe('PgTableStore write fence (invariant 8)', () => {
  it('a lease that runs out while the UPDATE waits for a pool connection stops it: no row is written', async () => {
    const cols = await createEnvelopeTable(db.pool, 'secrets', {});
    const before = [randomBytes(60), randomBytes(60)];
    await db.pool.query(`INSERT INTO secrets (id, wrapped_dek, payload, kek_id, kek_version) SELECT u.id, u.w, 'p', 'k1', 'v1' FROM unnest($1::bigint[], $2::bytea[]) AS u(id, w)`, [[1, 2], before]);
    const store = new PgTableStore({ pool, ...cols, wrapAlg: 'AES/GCM' });
    const reads = await store.readMany([{ key: '1' }, { key: '2' }]);
    const K2 = { id: 'k2', version: 'v2' };
    const writes = ['1', '2'].map((key) => {
      const r = reads.get(key) as Extract<ReadResult, { kind: 'envelope' }>;
      const wrapped = randomBytes(60);
      return { item: { key }, token: r.token, next: { dek: { ...r.envelope.dek, wrapped, kek: K2 }, stamp: { ...K2, wrappedDigest: wrappedDigest(wrapped) }, fields: {} } };
    });

    // The pool's only connection is busy: the write waits for it, and the lease runs out meanwhile.
    const busy = await pool.connect();
    let leaseValid = true;
    const pending = store.writeManyIfUnchanged(writes, undefined, () => {
      if (!leaseValid) throw new WriteFencedError('lease may have expired; not writing');
    });
    await new Promise((r) => setTimeout(r, 200));
    leaseValid = false;
    busy.release();
    await expect(pending).rejects.toBeInstanceOf(WriteFencedError);

    const { rows } = await db.pool.query<{ wrapped_dek: Buffer; kek_id: string }>('SELECT wrapped_dek, kek_id FROM secrets ORDER BY id');
    expect(rows.map((r) => r.kek_id)).toEqual(['k1', 'k1']);
    rows.forEach((r, i) => expect(r.wrapped_dek.equals(before[i]!)).toBe(true));
  });
});
