/**
 * Rows whose DEKs are wrapped by a KMS key (the local KMS server over HTTP), for the pipeline
 * tests: `kms+context` blobs in a Postgres envelope table, and the independent check that every
 * row decrypts under a given key to its own DEK.
 */
import type pg from 'pg';
import { randomBytes } from 'node:crypto';
import { DecryptCommand, EncryptCommand, type KMSClient } from '@aws-sdk/client-kms';
import { createEnvelopeTable } from '../../src/stores/pg-table-schema.ts';

/** The encryption context the S3 Encryption Client binds; the rows use the same. */
export const KMS_CONTEXT = { 'aws:x-amz-cek-alg': 'AES/GCM/NoPadding' };

/** The campaign-spec source for a table made by `kmsRowTable`. */
export function kmsRowSource(table: string) {
  return { type: 'pg', table, idColumn: 'id', wrappedKeyColumn: 'wrapped_dek', kekIdColumn: 'kek_id', kekVersionColumn: 'kek_version', wrapAlg: 'kms+context' } as const;
}

/** Creates `table` with rows 1..n, each a fresh DEK encrypted under `keyId`. Returns DEKs and original blobs by id. */
export async function kmsRowTable(pool: pg.Pool, kms: KMSClient, table: string, n: number, keyId: string): Promise<{ deks: Map<string, Buffer>; blobs: Map<string, Buffer> }> {
  await createEnvelopeTable(pool, table);
  const deks = new Map<string, Buffer>();
  const blobs = new Map<string, Buffer>();
  for (let i = 1; i <= n; i++) {
    const dek = randomBytes(32);
    const out = await kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: dek, EncryptionContext: KMS_CONTEXT }));
    deks.set(String(i), dek);
    blobs.set(String(i), Buffer.from(out.CiphertextBlob!));
  }
  await pool.query(
    `INSERT INTO ${table} (id, wrapped_dek, kek_id, kek_version) SELECT id, w, $3, '' FROM unnest($1::bigint[], $2::bytea[]) AS u(id, w)`,
    [[...blobs.keys()], [...blobs.values()], keyId],
  );
  return { deks, blobs };
}

/**
 * Every row of `table` names `keyId` and decrypts under it (KeyId set, so KMS refuses any other
 * key) to its own DEK; with `material`, under that key material, which its version column records.
 * Returns the number of rows checked.
 */
export async function expectKmsRowsUnder(pool: pg.Pool, kms: KMSClient, table: string, keyId: string, deks: Map<string, Buffer>, material?: string): Promise<number> {
  const { rows } = await pool.query<{ id: string; wrapped_dek: Buffer; kek_id: string; kek_version: string | null }>(`SELECT id::text, wrapped_dek, kek_id, kek_version FROM ${table}`);
  for (const row of rows) {
    if (row.kek_id !== keyId) throw new Error(`${table} row ${row.id}: kek_id is ${row.kek_id}, expected ${keyId}`);
    const out = await kms.send(new DecryptCommand({ CiphertextBlob: row.wrapped_dek, KeyId: keyId, EncryptionContext: KMS_CONTEXT }));
    if (!Buffer.from(out.Plaintext!).equals(deks.get(row.id)!)) throw new Error(`${table} row ${row.id}: decrypts to another DEK`);
    if (material !== undefined && out.KeyMaterialId !== material) throw new Error(`${table} row ${row.id}: under key material ${out.KeyMaterialId}, expected ${material}`);
    if (material !== undefined && row.kek_version !== material) throw new Error(`${table} row ${row.id}: version column holds ${row.kek_version}, expected the material ${material}`);
  }
  return rows.length;
}
