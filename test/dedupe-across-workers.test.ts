/**
 * Issue 17, point 3: dedupe across processes. 2,000 rows in 20 batches share 40 wrapped DEKs
 * (row i uses DEK i % 40, so every DEK is in every batch), rotated by 4 real worker processes
 * against the local KMS server: exactly one ReEncrypt per distinct DEK for the campaign, every
 * row decrypts under the new key to its own DEK (the KMS server's Decrypt, not rewrap's code), the
 * ledger's counts match the table, and neither Redis nor Postgres holds a plaintext DEK byte.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { CreateKeyCommand, DecryptCommand, EncryptCommand, type KMSClient } from '@aws-sdk/client-kms';
import { Redis } from 'ioredis';
import { createKmsClient } from '../src/kek/kms-client.ts';
import { createEnvelopeTable } from '../src/stores/pg-table-schema.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { LeakGuard } from './support/leak-guard.ts';

const CONTEXT = { 'aws:x-amz-cek-alg': 'AES/GCM/NoPadding' };
const ROWS = 2000;
const DEKS = 40;
let pipe: Pipeline;
let kms: KMSClient;
let keyA: string;
let keyB: string;
const deks: Buffer[] = [];
const guard = new LeakGuard();

beforeAll(async () => {
  pipe = await startPipeline({ label: 'dedupe4', workers: 4 });
  kms = createKmsClient({ endpoint: pipe.kms.url, region: 'us-east-1', credentials: { accessKeyId: 't', secretAccessKey: 't' } });
  [keyA, keyB] = await Promise.all([0, 1].map(async () => (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!));
  await createEnvelopeTable(pipe.db.pool, 'events');
  const blobs: Buffer[] = [];
  for (let d = 0; d < DEKS; d++) {
    deks.push(randomBytes(32));
    blobs.push(Buffer.from((await kms.send(new EncryptCommand({ KeyId: keyA, Plaintext: deks[d], EncryptionContext: CONTEXT }))).CiphertextBlob!));
  }
  guard.secret(...deks);
  const ids = Array.from({ length: ROWS }, (_, i) => String(i + 1));
  await pipe.db.pool.query(
    `INSERT INTO events (id, wrapped_dek, kek_id, kek_version) SELECT id, w, $3, '' FROM unnest($1::bigint[], $2::bytea[]) AS u(id, w)`,
    [ids, ids.map((id) => blobs[Number(id) % DEKS]), keyA],
  );
}, 180_000);

afterAll(async () => {
  await pipe?.stop();
});

/** Every value under the pipeline's queue prefix, read by type (raw bytes, and as text for the guard). */
async function redisValues(): Promise<Buffer[]> {
  const r = new Redis(pipe.redisUrl, { maxRetriesPerRequest: 2 });
  try {
    const out: Buffer[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${pipe.prefix}*`, 'COUNT', 1000);
      cursor = next;
      for (const k of keys) {
        out.push(Buffer.from(k));
        const type = await r.type(k);
        if (type === 'string') out.push((await r.getBuffer(k)) ?? Buffer.alloc(0));
        else if (type === 'hash') out.push(...Object.values(await r.hgetallBuffer(k)));
        else if (type === 'list') out.push(...(await r.lrangeBuffer(k, 0, -1)));
        else if (type === 'set') out.push(...(await r.smembersBuffer(k)));
        else if (type === 'zset') out.push(...(await r.zrangeBuffer(k, 0, -1)));
        else if (type === 'stream') out.push(Buffer.from(JSON.stringify(await r.xrange(k, '-', '+'))));
      }
    } while (cursor !== '0');
    return out;
  } finally {
    r.disconnect();
  }
}

/** Every row of every table of the ledger schema, as text (bytea as hex without its \x). */
async function ledgerText(): Promise<string[]> {
  const { rows: tables } = await pipe.db.pool.query<{ t: string }>(`SELECT table_name AS t FROM information_schema.tables WHERE table_schema = $1`, [pipe.db.schema]);
  const out: string[] = [];
  for (const { t } of tables) {
    const { rows } = await pipe.db.pool.query<{ j: string }>(`SELECT row_to_json(x)::text AS j FROM "${t}" x`);
    for (const r of rows) out.push(r.j.replace(/\\\\x/g, ' '));
  }
  return out;
}

describe('dedupe across worker processes (issue 17, point 3)', () => {
  it('4 workers, 2,000 rows in 20 batches sharing 40 wrapped DEKs: exactly 40 ReEncrypt calls for the campaign, every row decrypts under the new key to its own DEK, ledger counts match', async () => {
    await fetch(`${pipe.kms.url}/__admin/stats/reset`, { method: 'POST', headers: { authorization: `Bearer ${pipe.kms.adminToken}` } });
    const c = await pipe.create({
      name: 'dedupe-4-workers',
      sources: [{ type: 'pg', table: 'events', idColumn: 'id', wrappedKeyColumn: 'wrapped_dek', kekIdColumn: 'kek_id', kekVersionColumn: 'kek_version', wrapAlg: 'kms+context' }],
      provider: { type: 'kms' },
      from: keyA,
      to: keyB,
      options: { batchSize: 100, concurrency: 16, dedupeAcrossWorkers: true },
    });
    const p = await pipe.waitFor(c.id, 'completed', (x) => x.state === 'completed', 240_000);
    expect(p).toMatchObject({ planned: ROWS, rewrapped: ROWS, skipped: 0, failed: 0 });

    // More than one worker did the work: the batches really raced for the DEKs.
    const { rows: owners } = await pipe.db.pool.query<{ n: number }>(`SELECT count(DISTINCT lease_owner)::int AS n FROM rewrap_batches WHERE campaign_id = $1`, [c.id]);
    const { rows: batches } = await pipe.db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM rewrap_batches WHERE campaign_id = $1 AND state = 'done'`, [c.id]);
    expect(batches[0]!.n).toBe(ROWS / 100);
    expect(owners[0]!.n, 'batches done by distinct workers').toBeGreaterThanOrEqual(2);

    expect(pipe.kms.stats().requests.ReEncrypt ?? 0).toBe(DEKS);
    const { rows: cached } = await pipe.db.pool.query<{ n: number; stored: number }>(
      `SELECT count(*)::int AS n, count(result)::int AS stored FROM rewrap_dek_rewraps WHERE campaign_id = $1`,
      [c.id],
    );
    expect(cached[0]).toEqual({ n: DEKS, stored: DEKS });

    const { rows } = await pipe.db.pool.query<{ id: string; wrapped_dek: Buffer; kek_id: string }>('SELECT id::text, wrapped_dek, kek_id FROM events');
    expect(rows).toHaveLength(ROWS);
    const distinct = new Map<string, Buffer>();
    for (const r of rows) {
      expect(r.kek_id).toBe(keyB);
      distinct.set(r.wrapped_dek.toString('base64'), r.wrapped_dek);
    }
    // One new wrapping per DEK across all four processes, not one per worker.
    expect(distinct.size).toBe(DEKS);
    const plain = new Map<string, Buffer>();
    for (const [k, blob] of distinct) {
      const out = await kms.send(new DecryptCommand({ CiphertextBlob: blob, KeyId: keyB, EncryptionContext: CONTEXT }));
      plain.set(k, Buffer.from(out.Plaintext!));
    }
    for (const r of rows) expect(plain.get(r.wrapped_dek.toString('base64'))!.equals(deks[Number(r.id) % DEKS]!), `row ${r.id}`).toBe(true);
  }, 300_000);

  it('Redis and the ledger hold no plaintext DEK bytes after the run, raw, hex or base64 (invariant 5)', async () => {
    const values = await redisValues();
    expect(values.length).toBeGreaterThan(0);
    for (const v of values) for (const d of deks) expect(v.includes(d.subarray(0, 16)), 'a DEK in Redis').toBe(false);
    guard.text(...values.map((v) => v.toString('utf8')), ...(await ledgerText()), pipe.logs());
    expect(guard.findLeaks()).toEqual([]);
  });
});
