/**
 * The Postgres table store against a real Postgres, in a fresh schema for this file.
 * Wrapped keys are random 60-byte buffers: this file tests storage, not cryptography.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { freshSchema, type TestSchema } from './harness/pg.ts';
import { PgTableStore, type PgTableStoreConfig } from '../src/stores/pg-table-store.ts';
import { createEnvelopeTable, type EnvelopeTableOptions } from '../src/stores/pg-table-schema.ts';
import type { ReadResult } from '../src/stores/envelope-store.ts';
import type { Envelope } from '../src/core/envelope.ts';
import type { KekVersionRef } from '../src/core/kek-ref.ts';
import { ConfigError, ItemError } from '../src/core/errors.ts';
import { wrappedDigest } from '../src/envelope/stamp.ts';

let db: TestSchema;
beforeAll(async () => {
  db = await freshSchema('pg_table_store');
});
afterAll(async () => {
  await db?.drop();
});

let tableNo = 0;
/** A new table per test, filled with `n` rows (ids 1..n) wrapped by k1@v1; returns its store. */
async function seeded(n: number, opts: EnvelopeTableOptions & { context?: (id: number) => (string | null)[] } = {}) {
  const table = `secrets_${++tableNo}`;
  const cols = await createEnvelopeTable(db.pool, table, opts);
  const ids = Array.from({ length: n }, (_, i) => i + 1);
  const wrapped = ids.map(() => randomBytes(60));
  const text = opts.wrappedKeyType === 'text';
  const ctx = cols.contextColumns;
  await db.pool.query(
    `INSERT INTO ${table} (id, wrapped_dek, payload, kek_id, kek_version${ctx.map((c) => `, "${c}"`).join('')})
     SELECT u.id, u.w, u.p, 'k1', 'v1'${ctx.map((_, i) => `, u.c${i}`).join('')}
     FROM unnest($1::bigint[], $2::${text ? 'text' : 'bytea'}[], $3::bytea[]${ctx.map((_, i) => `, $${i + 4}::text[]`).join('')})
       AS u(id, w, p${ctx.map((_, i) => `, c${i}`).join('')})`,
    [
      ids,
      text ? wrapped.map((w) => w.toString('base64')) : wrapped,
      ids.map((id) => Buffer.from(`payload ${id}`)),
      ...ctx.map((_, i) => ids.map((id) => opts.context?.(id)[i] ?? null)),
    ],
  );
  const store = new PgTableStore({ pool: db.pool, ...cols, wrapAlg: 'AES/GCM' });
  return { table, cols, store, ids, wrapped };
}

function envelopeOf(r: ReadResult | undefined): { envelope: Envelope; token: unknown } {
  if (r?.kind !== 'envelope') throw new Error(`expected an envelope, got ${JSON.stringify(r)}`);
  return r;
}

/** What a rewrap produces: a new wrapped key under `kek`, everything else as read. */
function rewrapped(env: Envelope, kek: KekVersionRef, wrapped = randomBytes(60), matdesc = env.dek.matdesc): Envelope {
  return { dek: { ...env.dek, wrapped, matdesc, kek }, stamp: { ...kek, wrappedDigest: wrappedDigest(wrapped) }, fields: {} };
}

const K2 = { id: 'k2', version: 'v2' };

describe('PgTableStore batches', () => {
  it('reads and rewraps 10,000 rows in one batch: every row ends with its new wrapped key and KEK columns', async () => {
    const { table, store, ids, wrapped } = await seeded(10_000);
    const items = ids.map((id) => ({ key: String(id) }));

    const read = await store.readMany(items);
    expect(read.size).toBe(10_000);
    const first = envelopeOf(read.get('1')).envelope;
    expect(first.dek).toMatchObject({ wrapAlg: 'AES/GCM', cekAlg: 'AES/GCM/NoPadding', matdesc: {}, kek: { id: 'k1', version: 'v1' } });
    expect(first.stamp).toEqual({ id: 'k1', version: 'v1', wrappedDigest: wrappedDigest(wrapped[0]!) });
    expect(first.fields).toEqual({});
    ids.forEach((id, i) => expect(envelopeOf(read.get(String(id))).envelope.dek.wrapped.equals(wrapped[i]!)).toBe(true));

    const next = new Map<string, Buffer>();
    const writes = items.map(({ key }) => {
      const { envelope, token } = envelopeOf(read.get(key));
      const n = rewrapped(envelope, K2);
      next.set(key, n.dek.wrapped);
      return { item: { key }, token, next: n };
    });
    const results = await store.writeManyIfUnchanged(writes);
    expect([...results.values()].every((r) => r === 'written')).toBe(true);
    expect(results.size).toBe(10_000);

    const { rows } = await db.pool.query<{ id: string; wrapped_dek: Buffer; kek_id: string; kek_version: string; payload: Buffer }>(
      `SELECT id::text, wrapped_dek, kek_id, kek_version, payload FROM ${table}`,
    );
    expect(rows).toHaveLength(10_000);
    for (const row of rows) {
      expect(row.wrapped_dek.equals(next.get(row.id)!)).toBe(true);
      expect([row.kek_id, row.kek_version]).toEqual(['k2', 'v2']);
      expect(row.payload.toString()).toBe(`payload ${row.id}`);
    }
  });

  it('looks rows up through the primary key: a small batch probes the index, a 10,000-key batch never scans per key', async () => {
    const { table, store } = await seeded(10_000);
    await db.pool.query(`ANALYZE ${table}`);
    const { select } = await store.prepare();
    const plan = async (n: number) =>
      (await db.pool.query(`EXPLAIN ${select}`, [Array.from({ length: n }, (_, i) => String(i + 1))])).rows.map((r) => r['QUERY PLAN']).join('\n');
    expect(await plan(10)).toContain(`Index Scan using ${table}_pkey`);
    const big = await plan(10_000);
    /* A nested loop over a seq scan would read the whole table once per key. */
    expect(big).not.toMatch(/Nested Loop[\s\S]*Seq Scan on/);
  });

  /* Invariant 3: no write without compare-and-swap. */
  it('a row the application changed between read and write is a conflict and keeps the application value', async () => {
    const { table, store } = await seeded(3);
    const read = await store.readMany([{ key: '1' }, { key: '2' }, { key: '3' }]);
    const appValue = randomBytes(60);
    await db.pool.query(`UPDATE ${table} SET wrapped_dek = $1, kek_id = 'app-kek' WHERE id = 2`, [appValue]);

    const writes = ['1', '2', '3'].map((key) => {
      const { envelope, token } = envelopeOf(read.get(key));
      return { item: { key }, token, next: rewrapped(envelope, K2) };
    });
    const results = await store.writeManyIfUnchanged(writes);
    expect(Object.fromEntries(results)).toEqual({ '1': 'written', '2': 'conflict', '3': 'written' });

    const { rows } = await db.pool.query(`SELECT wrapped_dek, kek_id, kek_version FROM ${table} WHERE id = 2`);
    expect(rows[0].wrapped_dek.equals(appValue)).toBe(true);
    expect([rows[0].kek_id, rows[0].kek_version]).toEqual(['app-kek', 'v1']);

    /* The caller re-reads and now sees the application's key. */
    const again = envelopeOf(await store.read({ key: '2' }));
    expect(again.envelope.dek.wrapped.equals(appValue)).toBe(true);
    expect(await store.writeIfUnchanged({ key: '2' }, again.token, rewrapped(again.envelope, K2))).toBe('written');
  });

  it('reports rows that do not exist as item-missing, and a write to a deleted row as conflict', async () => {
    const { table, store } = await seeded(2);
    const read = await store.readMany([{ key: '1' }, { key: '404' }, { key: 'abc' }, { key: '99999999999999999999' }, { key: '1' }]);
    expect(read.get('404')).toMatchObject({ kind: 'invalid', reason: 'item-missing', detail: expect.stringContaining('id="404": no such row') });
    expect(read.get('abc')).toMatchObject({ kind: 'invalid', reason: 'item-missing', detail: expect.stringContaining('is not a bigint') });
    expect(read.get('99999999999999999999')).toMatchObject({ reason: 'item-missing', detail: expect.stringContaining('out of range') });
    expect(read.get('1')?.kind).toBe('envelope');

    const { envelope, token } = envelopeOf(read.get('1'));
    await db.pool.query(`DELETE FROM ${table} WHERE id = 1`);
    expect(await store.writeIfUnchanged({ key: '1' }, token, rewrapped(envelope, K2))).toBe('conflict');
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n).toBe(1);
  });

  it('returns each row under the key the caller used, even when the id type normalises it', async () => {
    const { store, wrapped } = await seeded(7);
    const r = envelopeOf(await store.read({ key: '007' }));
    expect(r.envelope.dek.wrapped.equals(wrapped[6]!)).toBe(true);
  });
});

describe('PgTableStore malformed rows', () => {
  it('names the column of a NULL or empty wrapped key, a NULL KEK id and an impossible key length', async () => {
    const { table, store } = await seeded(5);
    await db.pool.query(`UPDATE ${table} SET wrapped_dek = NULL WHERE id = 1`);
    await db.pool.query(`UPDATE ${table} SET wrapped_dek = ''::bytea WHERE id = 2`);
    await db.pool.query(`UPDATE ${table} SET kek_id = NULL WHERE id = 3`);
    await db.pool.query(`UPDATE ${table} SET wrapped_dek = '\\x0102'::bytea WHERE id = 4`);
    const r = await store.readMany(['1', '2', '3', '4', '5'].map((key) => ({ key })));
    /* Invariant 7: a row rewrap cannot read still names its KEK (its KEK columns), unless those are NULL too. */
    const kekReference = { kek: { id: 'k1', version: 'v1' } };
    expect(r.get('1')).toEqual({ kind: 'invalid', reason: 'malformed-envelope', detail: expect.stringMatching(/id="1": column "wrapped_dek" is NULL/), kekReference });
    expect(r.get('2')).toEqual({ kind: 'invalid', reason: 'malformed-envelope', detail: expect.stringMatching(/id="2": column "wrapped_dek" is empty/), kekReference });
    expect(r.get('3')).toEqual({ kind: 'invalid', reason: 'malformed-envelope', detail: expect.stringMatching(/id="3": column "kek_id" is NULL/) });
    expect(r.get('4')).toEqual({ kind: 'invalid', reason: 'malformed-wrapped-key', detail: expect.stringMatching(/column "wrapped_dek" holds 2 bytes/), kekReference });
    expect(r.get('5')?.kind).toBe('envelope');
  });
});

describe('PgTableStore context, base64 and material id columns', () => {
  it('builds the matdesc from the context columns and refuses to store a key bound to another context', async () => {
    const { table, store } = await seeded(3, { contextColumns: ['tenant', 'purpose'], context: (id) => [`t${id}`, id === 3 ? null : 'billing'] });
    const read = await store.readMany(['1', '2', '3'].map((key) => ({ key })));
    expect(envelopeOf(read.get('1')).envelope.dek.matdesc).toEqual({ tenant: 't1', purpose: 'billing' });
    /* A NULL context column contributes no key. */
    expect(envelopeOf(read.get('3')).envelope.dek.matdesc).toEqual({ tenant: 't3' });

    await db.pool.query(`UPDATE ${table} SET tenant = 'moved' WHERE id = 2`);
    const writes = ['1', '2', '3'].map((key) => {
      const { envelope, token } = envelopeOf(read.get(key));
      const matdesc = key === '3' ? { tenant: 'other' } : envelope.dek.matdesc;
      return { item: { key }, token, next: rewrapped(envelope, K2, randomBytes(60), matdesc) };
    });
    /* 2: the application moved the row to another tenant; 3: the new key claims another context. */
    expect(Object.fromEntries(await store.writeManyIfUnchanged(writes))).toEqual({ '1': 'written', '2': 'conflict', '3': 'conflict' });
    const { rows } = await db.pool.query(`SELECT id::int, kek_id, tenant, purpose FROM ${table} ORDER BY id`);
    expect(rows).toEqual([
      { id: 1, kek_id: 'k2', tenant: 't1', purpose: 'billing' },
      { id: 2, kek_id: 'k1', tenant: 'moved', purpose: 'billing' },
      { id: 3, kek_id: 'k1', tenant: 't3', purpose: null },
    ]);
  });

  it('reads and writes base64 in a text column, comparing the text exactly as stored', async () => {
    const { table, store, wrapped } = await seeded(3, { wrappedKeyType: 'text' });
    /* Non-canonical but valid base64 (trailing newline) must still compare equal on write. */
    await db.pool.query(`UPDATE ${table} SET wrapped_dek = wrapped_dek || E'\\n' WHERE id = 1`);
    await db.pool.query(`UPDATE ${table} SET wrapped_dek = 'not base64!' WHERE id = 2`);
    const read = await store.readMany(['1', '2'].map((key) => ({ key })));
    const one = envelopeOf(read.get('1'));
    expect(one.envelope.dek.wrapped.equals(wrapped[0]!)).toBe(true);
    expect(read.get('2')).toMatchObject({ reason: 'malformed-wrapped-key', detail: expect.stringContaining('column "wrapped_dek" is not valid base64') });

    const next = rewrapped(one.envelope, K2);
    expect(await store.writeIfUnchanged({ key: '1' }, one.token, next)).toBe('written');
    const { rows } = await db.pool.query(`SELECT wrapped_dek FROM ${table} WHERE id = 1`);
    expect(rows[0].wrapped_dek).toBe(next.dek.wrapped.toString('base64'));
  });

  it('writes and reads back the KMS key material id when a material id column is configured (and in the version column: a KMS key has no other version)', async () => {
    const { table, store } = await seeded(1, { materialIdColumn: true });
    const { envelope, token } = envelopeOf(await store.read({ key: '1' }));
    expect(envelope.dek.kek).toEqual({ id: 'k1', version: 'v1' });
    const kek = { id: 'arn:aws:kms:us-east-1:111122223333:key/k2', materialId: 'm-2' };
    expect(await store.writeIfUnchanged({ key: '1' }, token, rewrapped(envelope, kek))).toBe('written');
    expect((await db.pool.query(`SELECT kek_version, kek_material_id FROM ${table}`)).rows[0]).toEqual({ kek_version: 'm-2', kek_material_id: 'm-2' });
    const again = envelopeOf(await store.read({ key: '1' })).envelope;
    expect(again.dek.kek).toEqual({ ...kek, version: 'm-2' });
    expect(again.stamp).toMatchObject({ ...kek, version: 'm-2', wrappedDigest: wrappedDigest(again.dek.wrapped) });
    expect(await store.casLevel()).toBe('envelope');
  });
});

describe('PgTableStore configuration', () => {
  const base = (): PgTableStoreConfig => ({
    pool: db.pool,
    table: 'secrets_1',
    idColumn: 'id',
    wrappedKeyColumn: 'wrapped_dek',
    kekIdColumn: 'kek_id',
    kekVersionColumn: 'kek_version',
    wrapAlg: 'AES/GCM',
  });
  const fails = (patch: Record<string, unknown>) => () => new PgTableStore({ ...base(), ...patch } as PgTableStoreConfig);

  it('names the field and what was expected when the config is wrong', () => {
    expect(fails({ pool: undefined })).toThrow(/pool is missing; expected a pg.Pool/);
    expect(fails({ table: 'a.b.c' })).toThrow(/table is "a.b.c"; expected "schema.table" or "table"/);
    expect(fails({ idColumn: '' })).toThrow(/idColumn is ""; expected a column name/);
    expect(fails({ kekVersionColumn: 7 })).toThrow(/kekVersionColumn is a number; expected a column name/);
    expect(fails({ wrapAlg: 'kms' })).toThrow(/wrapAlg is "kms"; expected one of "AES\/GCM", "kms\+context"/);
    expect(fails({ cekAlg: '' })).toThrow(/cekAlg is ""; expected a content cipher name/);
    expect(fails({ contextColumns: 'tenant' })).toThrow(/contextColumns is "tenant"; expected an array/);
    expect(fails({ kekIdColumn: 'wrapped_dek' })).toThrow(/kekIdColumn names column "wrapped_dek", already used by wrappedKeyColumn/);
    expect(fails({ wrapAlg: 'kms' })).toThrow(ConfigError);
    expect(new PgTableStore({ ...base(), table: 'public.secrets' }).id).toBe('pg:public.secrets');
  });

  it('rejects identifier injection before any SQL is sent, and the table survives', async () => {
    const { table } = await seeded(1);
    const attempts: Record<string, unknown>[] = [
      { table: `${table}"; DROP TABLE ${table}; --` },
      { table: `${table} ; DROP TABLE ${table}` },
      { idColumn: 'id" = "id" OR "1' },
      { wrappedKeyColumn: 'wrapped_dek = NULL --' },
      { kekIdColumn: 'kek_id"' },
      { materialIdColumn: 'x; DELETE FROM secrets' },
      { contextColumns: ['tenant', 'a"b'] },
    ];
    for (const patch of attempts) expect(fails({ ...patch })).toThrow(ConfigError);
    expect(fails({ contextColumns: ['tenant', 'a"b'] })).toThrow(/contextColumns\[1\] is "a\\"b"/);
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n).toBe(1);
  });

  it('on first use, names a table or column the database does not have', async () => {
    const { table } = await seeded(1);
    await expect(new PgTableStore({ ...base(), table: 'no_such_table' }).read({ key: '1' })).rejects.toThrow(/table "no_such_table" does not exist/);
    await expect(new PgTableStore({ ...base(), table, kekVersionColumn: 'version' }).read({ key: '1' })).rejects.toThrow(
      /kekVersionColumn names column "version", which table secrets_\d+ does not have/,
    );
    await expect(new PgTableStore({ ...base(), table, wrappedKeyColumn: 'id', idColumn: 'kek_id', kekIdColumn: 'iv' }).read({ key: '1' })).rejects.toThrow(
      /wrappedKeyColumn "id" has type bigint; expected bytea, or text\/varchar holding base64/,
    );
  });
});

describe('PgTableStore failures', () => {
  it('an unreachable database is a transient store-unavailable error with the cause attached', async () => {
    const closed = new pg.Pool({ host: '127.0.0.1', port: 1, user: 'postgres', connectionTimeoutMillis: 2000 });
    try {
      const store = new PgTableStore({ pool: closed, table: 'anything', idColumn: 'id', wrappedKeyColumn: 'w', kekIdColumn: 'k', kekVersionColumn: 'v', wrapAlg: 'AES/GCM' });
      const err = await store.readMany([{ key: '1' }]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ItemError);
      expect(err).toMatchObject({ transient: true, reason: 'store-unavailable', message: expect.stringContaining('pg:anything'), cause: { code: 'ECONNREFUSED' } });
    } finally {
      await closed.end();
    }
  });

  it('a batch that waits on a row the application holds locked fails whole and transient, then succeeds on retry', async () => {
    const { table, cols } = await seeded(3);
    const url = new URL(db.url);
    url.searchParams.set('options', `-c search_path=${db.schema} -c lock_timeout=200`);
    const impatient = new pg.Pool({ connectionString: url.toString(), max: 2 });
    const app = await db.pool.connect();
    try {
      const store = new PgTableStore({ pool: impatient, ...cols, wrapAlg: 'AES/GCM' });
      const read = await store.readMany(['1', '2', '3'].map((key) => ({ key })));
      const writes = ['1', '2', '3'].map((key) => {
        const { envelope, token } = envelopeOf(read.get(key));
        return { item: { key }, token, next: rewrapped(envelope, K2) };
      });
      await app.query('BEGIN');
      await app.query(`SELECT 1 FROM ${table} WHERE id = 2 FOR UPDATE`);
      const err = await store.writeManyIfUnchanged(writes).catch((e: unknown) => e);
      expect(err).toMatchObject({ name: 'ItemError', transient: true, reason: 'store-unavailable', cause: { code: '55P03' } });
      /* One statement: none of the batch was written. */
      expect((await db.pool.query(`SELECT count(*)::int AS n FROM ${table} WHERE kek_id = 'k1'`)).rows[0].n).toBe(3);
      await app.query('ROLLBACK');
      expect([...(await store.writeManyIfUnchanged(writes)).values()]).toEqual(['written', 'written', 'written']);
    } finally {
      await app.query('ROLLBACK').catch(() => undefined);
      app.release();
      await impatient.end();
    }
  });

  it('an aborted signal stops the batch before anything is sent', async () => {
    const { table, store } = await seeded(2);
    const read = await store.readMany([{ key: '1' }, { key: '2' }]);
    const writes = ['1', '2'].map((key) => {
      const { envelope, token } = envelopeOf(read.get(key));
      return { item: { key }, token, next: rewrapped(envelope, K2) };
    });
    const controller = new AbortController();
    controller.abort(new Error('worker shutting down'));
    await expect(store.writeManyIfUnchanged(writes, controller.signal)).rejects.toThrow('worker shutting down');
    await expect(store.readMany([{ key: '1' }], controller.signal)).rejects.toThrow('worker shutting down');
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM ${table} WHERE kek_id = 'k1'`)).rows[0].n).toBe(2);
  });

  it('refuses a write that would leave the row unreadable: another wrapAlg, or no KEK named', async () => {
    const { store } = await seeded(1);
    const { envelope, token } = envelopeOf(await store.read({ key: '1' }));
    const kms: Envelope = { ...rewrapped(envelope, K2), dek: { ...rewrapped(envelope, K2).dek, wrapAlg: 'kms+context' } };
    await expect(store.writeIfUnchanged({ key: '1' }, token, kms)).rejects.toThrow(/new envelope is kms\+context; this table holds AES\/GCM only/);
    const anonymous: Envelope = { dek: { ...envelope.dek, wrapped: randomBytes(60), kek: undefined }, fields: {} };
    await expect(store.writeIfUnchanged({ key: '1' }, token, anonymous)).rejects.toThrow(/names no KEK/);
    expect(envelopeOf(await store.read({ key: '1' })).envelope.dek.kek).toEqual({ id: 'k1', version: 'v1' });
  });
});
