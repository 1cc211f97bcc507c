/**
 * Draining one KMS key material (`<key>@<material>`, what a rotate-on-demand schedule starts)
 * from a Postgres table whose application never recorded materials: the table source selects
 * every row that may be under it, KMS ReEncrypt tells, and every written row records its
 * material so that the source no longer selects it. Real Postgres, the local KMS server over
 * HTTP, the real SDK; the batch path the workers run (rewrapBatch). The same for S3 objects
 * the application wrote without rewrap's stamp.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { randomBytes } from 'node:crypto';
import { CreateKeyCommand, DecryptCommand, DescribeKeyCommand, EncryptCommand, RotateKeyOnDemandCommand, type KMSClient } from '@aws-sdk/client-kms';
import { freshSchema, type TestSchema } from './harness/pg.ts';
import { startKmsServer, type KmsServer } from '../dev/kms-server/server.ts';
import { createKmsClient } from '../src/kek/kms-client.ts';
import { kmsEncryptionContext, KmsKekProvider } from '../src/kek/kms-kek-provider.ts';
import { DESCRIBE_TTL_MS, PgTableStore } from '../src/stores/pg-table-store.ts';
import { PgTableSource } from '../src/sources/pg-table-source.ts';
import { createEnvelopeTable } from '../src/stores/pg-table-schema.ts';
import { rewrapBatch } from '../src/rewrap/rewrap-batch.ts';
import { KMS_CONTEXT } from './support/kms-row-fixture.ts';
import type { S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../src/stores/s3-client.ts';
import { S3EnvelopeStore } from '../src/stores/s3-envelope-store.ts';
import { getDecrypted, putEncrypted } from '../dev/reference/s3ec-client.ts';
import { freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';

let db: TestSchema;
let server: KmsServer;
let kms: KMSClient;
let s3: S3Client;
let tb: TestBucket | undefined;

beforeAll(async () => {
  db = await freshSchema('kms_material_drain');
  server = await startKmsServer();
  kms = createKmsClient({ endpoint: server.url, region: 'us-east-1', credentials: { accessKeyId: 't', secretAccessKey: 't' } });
});

afterAll(async () => {
  await tb?.cleanup();
  s3?.destroy();
  kms?.destroy();
  await server?.close();
  await db?.drop();
});

const currentMaterial = async (key: string) => (await kms.send(new DescribeKeyCommand({ KeyId: key }))).KeyMetadata!.CurrentKeyMaterialId!;

/** Rows as the application wrote them: a fresh DEK encrypted under the key's current material, `version` as given. */
async function insertRows(table: string, key: string, rows: { id: number; version: string | null }[], deks: Map<string, Buffer>) {
  for (const r of rows) {
    const dek = randomBytes(32);
    const out = await kms.send(new EncryptCommand({ KeyId: key, Plaintext: dek, EncryptionContext: KMS_CONTEXT }));
    deks.set(String(r.id), dek);
    await db.pool.query(`INSERT INTO ${table} (id, wrapped_dek, kek_id, kek_version) VALUES ($1, $2, $3, $4)`, [r.id, Buffer.from(out.CiphertextBlob!), key, r.version]);
  }
}

async function selected(source: PgTableSource): Promise<string[]> {
  const keys: string[] = [];
  for (let cursor: unknown = null, done = false; !done; ) {
    const page = await source.page(cursor, 2);
    keys.push(...page.groups.flatMap((g) => g.keys));
    cursor = page.cursor;
    done = page.done;
  }
  return keys;
}

describe('draining one KMS key material from rows with no recorded material', () => {
  it('moves every row under the key to its current material, records the material in the version column, and then selects nothing', async () => {
    const key = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
    const cols = await createEnvelopeTable(db.pool, 'app_rows');
    const deks = new Map<string, Buffer>();
    const m0 = await currentMaterial(key);
    await insertRows('app_rows', key, [{ id: 1, version: null }], deks); // under an older material, unrecorded
    await kms.send(new RotateKeyOnDemandCommand({ KeyId: key }));
    const m1 = await currentMaterial(key);
    await insertRows('app_rows', key, [{ id: 2, version: null }, { id: 3, version: '' }, { id: 4, version: 'v1' }, { id: 5, version: m1 }], deks);
    await kms.send(new RotateKeyOnDemandCommand({ KeyId: key }));
    const m2 = await currentMaterial(key);
    await insertRows('app_rows', key, [{ id: 6, version: null }, { id: 7, version: m2 }], deks); // already under the target
    expect(new Set([m0, m1, m2]).size).toBe(3);

    const from = { id: key, version: m1 };
    const to = { id: key };
    const source = new PgTableSource(db.pool, { ...cols, kmsMaterial: true }, from);
    /* Row 7 records m2: it is not under m1, and the source knows without asking KMS. */
    expect(await selected(source)).toEqual(['1', '2', '3', '4', '5', '6']);
    expect(await selected(new PgTableSource(db.pool, cols, from)), 'without kmsMaterial, only recorded materials').toEqual(['5']);

    const store = new PgTableStore({ pool: db.pool, ...cols, wrapAlg: 'kms+context' });
    const outcomes = await rewrapBatch({ store, provider: new KmsKekProvider(kms), from, to }, ['1', '2', '3', '4', '5', '6'].map((key) => ({ key })), { concurrency: 4 });
    const byKey = new Map(outcomes.map((o) => [o.key, o]));
    for (const k of ['2', '3', '4', '5']) expect(byKey.get(k)).toMatchObject({ status: 'rewrapped', from: { id: key, materialId: m1 }, to: { id: key, materialId: m2 } });
    /* Under an older material of the same key: moved too (the key's only encrypting material is m2), and the outcome says from where. */
    expect(byKey.get('1')).toMatchObject({ status: 'rewrapped', from: { id: key, materialId: m0 }, to: { id: key, materialId: m2 } });
    /* Already under m2: the write only records the material; the outcome says the key did not move. */
    expect(byKey.get('6')).toMatchObject({ status: 'skipped', reason: 'already-at-target', current: { id: key, materialId: m2 }, recorded: { requestId: expect.any(String) } });

    const { rows } = await db.pool.query<{ id: string; wrapped_dek: Buffer; kek_id: string; kek_version: string }>('SELECT id::text, wrapped_dek, kek_id, kek_version FROM app_rows ORDER BY id');
    for (const row of rows) {
      expect(row, `row ${row.id}`).toMatchObject({ kek_id: key, kek_version: m2 });
      const out = await kms.send(new DecryptCommand({ CiphertextBlob: row.wrapped_dek, KeyId: key, EncryptionContext: KMS_CONTEXT }));
      expect(out.KeyMaterialId, `row ${row.id}`).toBe(m2);
      expect(Buffer.from(out.Plaintext!).equals(deks.get(row.id)!), `row ${row.id} decrypts to its own DEK`).toBe(true);
    }
    /* Postcondition: nothing is left to select, so a delta pass over this table finds nothing and the campaign ends. */
    expect(await selected(source)).toEqual([]);
  });

  it('S3 objects with no stamp: each moves to the current material or, already there, gets a stamp; a second pass then skips all without a KMS call', async () => {
    const env = s3TestEnv();
    s3 = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
    tb = await freshBucket(s3, 'kms-material');
    const key = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
    const put = (name: string) => putEncrypted(s3, tb!.bucket, name, Buffer.from(`payload of ${name}`), { placement: 'metadata', wrap: { kind: 'kms', kms, keyId: key, matdesc: { kms_cmk_id: key } } });
    const m0 = await currentMaterial(key);
    await put('older');
    await kms.send(new RotateKeyOnDemandCommand({ KeyId: key }));
    const m1 = await currentMaterial(key);
    await put('source');
    await kms.send(new RotateKeyOnDemandCommand({ KeyId: key }));
    const m2 = await currentMaterial(key);
    await put('current');

    const store = new S3EnvelopeStore({ client: s3, bucket: tb.bucket });
    const target = { store, provider: new KmsKekProvider(kms), from: { id: key, version: m1 }, to: { id: key } };
    const items = ['older', 'source', 'current'].map((k) => ({ key: k }));
    const byKey = new Map((await rewrapBatch(target, items, { concurrency: 3 })).map((o) => [o.key, o]));
    expect(byKey.get('older')).toMatchObject({ status: 'rewrapped', from: { materialId: m0 }, to: { materialId: m2 } });
    expect(byKey.get('source')).toMatchObject({ status: 'rewrapped', from: { materialId: m1 }, to: { materialId: m2 } });
    expect(byKey.get('current')).toMatchObject({ status: 'skipped', reason: 'already-at-target', current: { id: key, materialId: m2 }, recorded: { requestId: expect.any(String) } });

    for (const { key: name } of items) {
      const read = await store.read({ key: name });
      if (read.kind !== 'envelope') throw new Error(`${name}: ${read.detail}`);
      expect(read.envelope.stamp, name).toMatchObject({ id: key, materialId: m2 });
      const out = await kms.send(new DecryptCommand({ CiphertextBlob: read.envelope.dek.wrapped, KeyId: key, EncryptionContext: kmsEncryptionContext(read.envelope.dek) }));
      expect(out.KeyMaterialId, name).toBe(m2);
      expect((await getDecrypted(s3, tb.bucket, name, { kms, kmsKeyId: key })).payload.toString(), name).toBe(`payload of ${name}`);
    }
    const calls = server.stats().requestsTotal;
    const again = await rewrapBatch(target, items, { concurrency: 3 });
    expect(again.map((o) => o.status)).toEqual(['skipped', 'skipped', 'skipped']);
    expect(server.stats().requestsTotal, 'stamped objects are classified without KMS').toBe(calls);
  });

  it('moving the rows of one material to another key leaves rows of other materials as they are: skipped as not under the source, not written', async () => {
    const key = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
    const target = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
    const cols = await createEnvelopeTable(db.pool, 'incident_rows');
    const deks = new Map<string, Buffer>();
    await insertRows('incident_rows', key, [{ id: 1, version: null }], deks); // an older material, unrecorded
    await kms.send(new RotateKeyOnDemandCommand({ KeyId: key }));
    const compromised = await currentMaterial(key);
    await insertRows('incident_rows', key, [{ id: 2, version: null }], deks);
    const { rows: before } = await db.pool.query<{ wrapped_dek: Buffer }>('SELECT wrapped_dek FROM incident_rows WHERE id = 1');

    const store = new PgTableStore({ pool: db.pool, ...cols, wrapAlg: 'kms+context' });
    const from = { id: key, version: compromised };
    const outcomes = await rewrapBatch({ store, provider: new KmsKekProvider(kms), from, to: { id: target } }, [{ key: '1' }, { key: '2' }], { concurrency: 2 });
    const byKey = new Map(outcomes.map((o) => [o.key, o]));
    expect(byKey.get('2')).toMatchObject({ status: 'rewrapped', from: { id: key, materialId: compromised }, to: { id: target } });
    expect(byKey.get('1')).toMatchObject({ status: 'skipped', reason: 'not-under-source' });
    expect(byKey.get('1')).not.toMatchObject({ current: { materialId: compromised } });

    const { rows } = await db.pool.query<{ id: string; wrapped_dek: Buffer; kek_id: string; kek_version: string | null }>('SELECT id::text, wrapped_dek, kek_id, kek_version FROM incident_rows ORDER BY id');
    expect(rows[0]).toMatchObject({ kek_id: key, kek_version: null });
    expect(rows[0]!.wrapped_dek.equals(before[0]!.wrapped_dek), 'row 1 is left as it was').toBe(true);
    expect(rows[1]).toMatchObject({ kek_id: target });
    const out = await kms.send(new DecryptCommand({ CiphertextBlob: rows[1]!.wrapped_dek, KeyId: target, EncryptionContext: KMS_CONTEXT }));
    expect(Buffer.from(out.Plaintext!).equals(deks.get('2')!)).toBe(true);
  });

  it('a version column that cannot hold a material id keeps NULL for KMS rows, and a material drain over it is refused naming the column', async () => {
    const key = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
    const target = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
    const cols = { table: 'narrow_rows', idColumn: 'id', wrappedKeyColumn: 'wrapped_dek', kekIdColumn: 'kek_id', kekVersionColumn: 'kek_version', contextColumns: [] };
    for (const type of ['integer', 'varchar(16)']) {
      await db.pool.query(`DROP TABLE IF EXISTS narrow_rows; CREATE TABLE narrow_rows (id bigint PRIMARY KEY, wrapped_dek bytea, kek_id text, kek_version ${type})`);
      const deks = new Map<string, Buffer>();
      await insertRows('narrow_rows', key, [{ id: 1, version: null }, { id: 2, version: null }], deks);
      const store = new PgTableStore({ pool: db.pool, ...cols, wrapAlg: 'kms+context' });
      const outcomes = await rewrapBatch({ store, provider: new KmsKekProvider(kms), from: { id: key }, to: { id: target } }, [{ key: '1' }, { key: '2' }], { concurrency: 2 });
      expect(outcomes.map((o) => o.status), type).toEqual(['rewrapped', 'rewrapped']);
      const { rows } = await db.pool.query<{ id: string; wrapped_dek: Buffer; kek_id: string; kek_version: string | null }>('SELECT id::text, wrapped_dek, kek_id, kek_version FROM narrow_rows ORDER BY id');
      for (const row of rows) {
        expect(row, `${type} row ${row.id}`).toMatchObject({ kek_id: target, kek_version: null });
        const out = await kms.send(new DecryptCommand({ CiphertextBlob: row.wrapped_dek, KeyId: target, EncryptionContext: KMS_CONTEXT }));
        expect(Buffer.from(out.Plaintext!).equals(deks.get(row.id)!), `${type} row ${row.id}`).toBe(true);
      }
      const drain = new PgTableSource(db.pool, { ...cols, kmsMaterial: true }, { id: target, version: await currentMaterial(target) });
      const err = await drain.page(null, 10).then(() => undefined, (e: Error) => e);
      expect(err, type).toMatchObject({ name: 'ConfigError' });
      expect(err!.message).toMatch(/^pg source narrow_rows: draining KMS key material [0-9a-f]{64} needs kekVersionColumn "kek_version" to hold 64-character material ids/);
      expect(err!.message).toMatch(type === 'integer' ? /; it is integer\. Change the column type, wait a minute/ : /; it is character varying\(16\)\. Change the column type/);
    }
  });

  it('a version column widened while the store is in use is seen within DESCRIBE_TTL_MS: KMS writes record the material from then on, no restart', async () => {
    const key = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
    const target = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
    const cols = { table: 'widened_rows', idColumn: 'id', wrappedKeyColumn: 'wrapped_dek', kekIdColumn: 'kek_id', kekVersionColumn: 'kek_version', contextColumns: [] };
    await db.pool.query('CREATE TABLE widened_rows (id bigint PRIMARY KEY, wrapped_dek bytea, kek_id text, kek_version varchar(16))');
    const deks = new Map<string, Buffer>();
    await insertRows('widened_rows', key, [{ id: 1, version: null }, { id: 2, version: null }], deks);
    const store = new PgTableStore({ pool: db.pool, ...cols, wrapAlg: 'kms+context' });
    const target1 = { store, provider: new KmsKekProvider(kms), from: { id: key }, to: { id: target } };
    expect((await rewrapBatch(target1, [{ key: '1' }], { concurrency: 1 }))[0]).toMatchObject({ status: 'rewrapped' });
    await db.pool.query('ALTER TABLE widened_rows ALTER COLUMN kek_version TYPE text');
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + DESCRIBE_TTL_MS + 1);
      expect((await rewrapBatch(target1, [{ key: '2' }], { concurrency: 1 }))[0]).toMatchObject({ status: 'rewrapped' });
    } finally {
      vi.useRealTimers();
    }
    const material = await currentMaterial(target);
    const { rows } = await db.pool.query<{ id: string; kek_version: string | null }>('SELECT id::text, kek_version FROM widened_rows ORDER BY id');
    expect(rows).toEqual([
      { id: '1', kek_version: null },
      { id: '2', kek_version: material },
    ]);
  });
});

