/**
 * Issue acceptance (campaign kinds) 6: 10,000 items sharing 100 wrapped DEKs cause at most 100
 * KMS rewrap calls, through a real worker process, and every item still decrypts under the
 * new key to its own DEK.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { CreateKeyCommand, DecryptCommand, EncryptCommand, type KMSClient } from '@aws-sdk/client-kms';
import { createKmsClient } from '../src/kek/kms-client.ts';
import { createEnvelopeTable } from '../src/stores/pg-table-schema.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';

const CONTEXT = { 'aws:x-amz-cek-alg': 'AES/GCM/NoPadding' };
let pipe: Pipeline;
let kms: KMSClient;
let keyA: string;
let keyB: string;
const dekOfRow = new Map<string, Buffer>();

beforeAll(async () => {
  pipe = await startPipeline({ label: 'dedupe', workers: 1 });
  kms = createKmsClient({ endpoint: pipe.kms.url, region: 'us-east-1', credentials: { accessKeyId: 't', secretAccessKey: 't' } });
  [keyA, keyB] = await Promise.all([0, 1].map(async () => (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!));
  await createEnvelopeTable(pipe.db.pool, 'events');
  const ids: string[] = [];
  const wrapped: Buffer[] = [];
  for (let d = 0; d < 100; d++) {
    const dek = randomBytes(32);
    const blob = Buffer.from((await kms.send(new EncryptCommand({ KeyId: keyA, Plaintext: dek, EncryptionContext: CONTEXT }))).CiphertextBlob!);
    for (let i = 0; i < 100; i++) {
      const id = String(d * 100 + i + 1);
      ids.push(id);
      wrapped.push(blob);
      dekOfRow.set(id, dek);
    }
  }
  await pipe.db.pool.query(
    `INSERT INTO events (id, wrapped_dek, kek_id, kek_version) SELECT id, w, $3, '' FROM unnest($1::bigint[], $2::bytea[]) AS u(id, w)`,
    [ids, wrapped, keyA],
  );
  await fetch(`${pipe.kms.url}/__admin/stats/reset`, { method: 'POST', headers: { authorization: `Bearer ${pipe.kms.adminToken}` } });
}, 120_000);

afterAll(async () => {
  await pipe?.stop();
});

describe('dedupe of shared wrapped DEKs', () => {
  it('10,000 rows sharing 100 wrapped DEKs cost at most 100 ReEncrypt calls, and each row decrypts under the new key to its DEK', async () => {
    const c = await pipe.create({
      name: 'dedupe',
      sources: [{ type: 'pg', table: 'events', idColumn: 'id', wrappedKeyColumn: 'wrapped_dek', kekIdColumn: 'kek_id', kekVersionColumn: 'kek_version', wrapAlg: 'kms+context' }],
      provider: { type: 'kms' },
      from: keyA,
      to: keyB,
      options: { batchSize: 500, concurrency: 16 },
    });
    const p = await pipe.waitFor(c.id, 'completed', (x) => x.state === 'completed', 180_000);
    expect(p).toMatchObject({ planned: 10_000, rewrapped: 10_000, failed: 0 });
    const stats = (await (await fetch(`${pipe.kms.url}/__admin/stats`, { headers: { authorization: `Bearer ${pipe.kms.adminToken}` } })).json()) as { requests: Record<string, number> };
    expect(stats.requests.ReEncrypt ?? 0).toBeLessThanOrEqual(100);
    expect(stats.requests.ReEncrypt ?? 0).toBeGreaterThan(0);

    const { rows } = await pipe.db.pool.query<{ id: string; wrapped_dek: Buffer; kek_id: string }>('SELECT id::text, wrapped_dek, kek_id FROM events');
    const distinct = new Map<string, Buffer>();
    for (const r of rows) {
      expect(r.kek_id).toBe(keyB);
      distinct.set(r.wrapped_dek.toString('base64'), r.wrapped_dek);
    }
    expect(distinct.size).toBe(100);
    // Decrypt each distinct new blob under key B only, then check every row maps to its own DEK.
    const plain = new Map<string, Buffer>();
    for (const [k, blob] of distinct) {
      const out = await kms.send(new DecryptCommand({ CiphertextBlob: blob, KeyId: keyB, EncryptionContext: CONTEXT }));
      plain.set(k, Buffer.from(out.Plaintext!));
    }
    for (const r of rows) expect(plain.get(r.wrapped_dek.toString('base64'))!.equals(dekOfRow.get(r.id)!), `row ${r.id}`).toBe(true);
  });
});
