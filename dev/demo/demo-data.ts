/** The demo's sample data: S3EC V2 objects under a KMS key, and envelope-encrypted rows. */
import type { S3Client } from '@aws-sdk/client-s3';
import type { KMSClient } from '@aws-sdk/client-kms';
import type pg from 'pg';
import { randomBytes } from 'node:crypto';
import { getDecrypted, putEncrypted } from '../reference/s3ec-client.ts';
import { insertRows, unwrapAll, type RowKek } from '../reference/row-client.ts';

export async function writeObjects(s3: S3Client, kms: KMSClient, bucket: string, keyId: string, n: number): Promise<Map<string, Buffer>> {
  const payloads = new Map<string, Buffer>();
  const keys = Array.from({ length: n }, (_, i) => `photos/${String(i).padStart(5, '0')}.jpg`);
  for (let i = 0; i < keys.length; i += 32) {
    await Promise.all(
      keys.slice(i, i + 32).map(async (key, j) => {
        const payload = randomBytes(512 + ((i + j) % 7) * 300);
        payloads.set(key, payload);
        await putEncrypted(s3, bucket, key, payload, {
          placement: (i + j) % 2 === 0 ? 'metadata' : 'instruction',
          wrap: { kind: 'kms', kms, keyId, matdesc: { app: 'demo-photos' } },
          contentType: 'image/jpeg',
          userMeta: { uploader: 'demo' },
        });
      }),
    );
  }
  return payloads;
}

/** Every object decrypts with the new KMS key only, to its original bytes. Returns the failures. */
export async function verifyObjects(s3: S3Client, kms: KMSClient, bucket: string, newKeyId: string, payloads: Map<string, Buffer>): Promise<string[]> {
  const bad: string[] = [];
  const keys = [...payloads.keys()];
  for (let i = 0; i < keys.length; i += 32) {
    await Promise.all(
      keys.slice(i, i + 32).map(async (key) => {
        try {
          const d = await getDecrypted(s3, bucket, key, { kms, kmsKeyId: newKeyId });
          if (!d.payload.equals(payloads.get(key)!)) bad.push(`${key}: payload differs`);
        } catch (err) {
          bad.push(`${key}: ${(err as Error).name}`);
        }
      }),
    );
  }
  return bad;
}

export async function writeRows(pool: pg.Pool, table: string, n: number, kek: RowKek): Promise<Map<string, Buffer>> {
  return insertRows(pool, table, n, kek);
}

export async function verifyRows(pool: pg.Pool, table: string, kek: RowKek, deks: Map<string, Buffer>): Promise<string[]> {
  const bad: string[] = [];
  let got: Map<string, { dek: Buffer; kek: string }>;
  try {
    got = await unwrapAll(pool, table, [kek]);
  } catch (err) {
    return [(err as Error).message];
  }
  for (const [id, dek] of deks) {
    const g = got.get(id);
    if (!g) bad.push(`row ${id}: missing`);
    else if (!g.dek.equals(dek)) bad.push(`row ${id}: DEK differs`);
  }
  return bad;
}
