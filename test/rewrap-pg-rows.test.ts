/**
 * Postgres rows through the batched path (issue acceptance 5), conflicts (acceptance 3, rows),
 * and re-runs that write nothing (acceptance 2, rows).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { freshSchema, type TestSchema } from './harness/pg.ts';
import { createEnvelopeTable } from '../src/stores/pg-table-schema.ts';
import { PgTableStore } from '../src/stores/pg-table-store.ts';
import { LocalKeyringProvider } from '../src/kek/local-keyring-provider.ts';
import { parseKeyring } from '../src/kek/keyring-file.ts';
import { rewrapBatch } from '../src/rewrap/rewrap-batch.ts';
import { countOutcomes } from '../src/rewrap/outcome.ts';
import { insertRows, unwrapAll, type RowKek } from '../dev/reference/row-client.ts';
import { aesWrap } from '../dev/reference/s3ec-client.ts';
import { LeakGuard } from './support/leak-guard.ts';

const v1: RowKek = { id: 'rows', version: '1', material: randomBytes(32) };
const v2: RowKek = { id: 'rows', version: '2', material: randomBytes(32) };
const keyring = () =>
  new LocalKeyringProvider(parseKeyring({ keks: [v1, v2].map((k) => ({ id: k.id, version: k.version, material: k.material.toString('base64') })) }));

let db: TestSchema;
const guard = new LeakGuard();
guard.secret(v1.material, v2.material);

beforeAll(async () => {
  db = await freshSchema('pgrows');
});
afterAll(async () => {
  await db?.drop();
});

async function table(name: string) {
  const cols = await createEnvelopeTable(db.pool, name);
  return new PgTableStore({ pool: db.pool, ...cols, wrapAlg: 'AES/GCM' });
}

describe('rewrap of Postgres rows', () => {
  it('moves 10,000 rows to the new KEK in batches; every DEK unwraps under it and equals the original', async () => {
    const store = await table('secrets');
    const deks = await insertRows(db.pool, 'secrets', 10_000, v1);
    for (const d of deks.values()) guard.secret(d);
    const target = { store, provider: keyring(), from: { id: 'rows', version: '1' }, to: { id: 'rows', version: '2' } };
    const keys = [...deks.keys()];
    for (let i = 0; i < keys.length; i += 2000) {
      const outcomes = await rewrapBatch(target, keys.slice(i, i + 2000).map((key) => ({ key })), { concurrency: 8 });
      guard.text(...outcomes);
      expect(countOutcomes(outcomes)).toEqual({ rewrapped: 2000, skipped: 0, failed: 0, retry: 0 });
    }
    // Independent check: only v2's material is given, so a row still under v1 would throw.
    const after = await unwrapAll(db.pool, 'secrets', [v2]);
    expect(after.size).toBe(10_000);
    for (const [id, { dek, kek }] of after) {
      expect(kek).toBe('rows@2');
      expect(dek.equals(deks.get(id)!)).toBe(true);
    }
  });

  it('a second run writes nothing: every row is skipped as already at the target (invariant 2)', async () => {
    const store = await table('rerun');
    const deks = await insertRows(db.pool, 'rerun', 500, v1);
    const target = { store, provider: keyring(), from: { id: 'rows', version: '1' }, to: { id: 'rows', version: '2' } };
    const items = [...deks.keys()].map((key) => ({ key }));
    await rewrapBatch(target, items, { concurrency: 4 });
    const before = await db.pool.query('SELECT id, wrapped_dek FROM rerun ORDER BY id');
    const again = await rewrapBatch(target, items, { concurrency: 4 });
    expect(countOutcomes(again)).toEqual({ rewrapped: 0, skipped: 500, failed: 0, retry: 0 });
    expect(again.every((o) => o.status === 'skipped' && o.reason === 'already-at-target')).toBe(true);
    const after = await db.pool.query('SELECT id, wrapped_dek FROM rerun ORDER BY id');
    expect(after.rows).toEqual(before.rows);
  });

  it('an application write between our read and our write is never overwritten: the row is re-read and rewrapped on top of it', async () => {
    const store = await table('racy');
    const deks = await insertRows(db.pool, 'racy', 50, v1);
    const appDek = randomBytes(32);
    guard.secret(appDek);
    let raced = false;
    // The application rewrites row 7 with a fresh DEK (still under v1) right after our read.
    const racing = new Proxy(store, {
      get(t, prop, recv) {
        if (prop === 'writeManyIfUnchanged') {
          return async (...args: Parameters<PgTableStore['writeManyIfUnchanged']>) => {
            if (!raced) {
              raced = true;
              await db.pool.query('UPDATE racy SET wrapped_dek = $1 WHERE id = 7', [aesWrap(v1.material, appDek)]);
            }
            return t.writeManyIfUnchanged(...args);
          };
        }
        return Reflect.get(t, prop, recv);
      },
    });
    const target = { store: racing, provider: keyring(), from: { id: 'rows', version: '1' }, to: { id: 'rows', version: '2' } };
    const outcomes = await rewrapBatch(target, [...deks.keys()].map((key) => ({ key })), { concurrency: 4 });
    expect(countOutcomes(outcomes).rewrapped).toBe(50);
    expect(outcomes.find((o) => o.key === '7')).toMatchObject({ status: 'rewrapped', conflicts: 1 });
    const after = await unwrapAll(db.pool, 'racy', [v2]);
    expect(after.get('7')!.dek.equals(appDek)).toBe(true); // the application's DEK, moved to v2
    expect(after.get('8')!.dek.equals(deks.get('8')!)).toBe(true);
  });

  it('no DEK or KEK bytes reach an outcome, log line or error message (invariant 5)', () => {
    expect(guard.linesSeen).toBeGreaterThan(0);
    expect(guard.findLeaks()).toEqual([]);
  });
});
