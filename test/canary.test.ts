/**
 * Issue acceptance (campaign kinds) 3: a canary stage rewraps a fraction of the items and
 * decrypts them end to end before the campaign fans out; a failed canary stops the campaign
 * before more than the canary fraction was written.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { CreateKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import type { S3Client } from '@aws-sdk/client-s3';
import { createKmsClient } from '../src/kek/kms-client.ts';
import { createS3Client } from '../src/stores/s3-client.ts';
import { createEnvelopeTable } from '../src/stores/pg-table-schema.ts';
import { getCampaign } from '../src/ledger/index.ts';
import { getDecrypted, putEncrypted } from '../dev/reference/s3ec-client.ts';
import { insertRows } from '../dev/reference/row-client.ts';
import { freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';

let pipe: Pipeline;
let kms: KMSClient;
let s3: S3Client;
let tb: TestBucket;

beforeAll(async () => {
  pipe = await startPipeline({ label: 'canary', workers: 1 });
  kms = createKmsClient({ endpoint: pipe.kms.url, region: 'us-east-1', credentials: { accessKeyId: 't', secretAccessKey: 't' } });
  const env = s3TestEnv();
  s3 = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  tb = await freshBucket(s3, 'canary');
}, 120_000);

afterAll(async () => {
  await pipe?.stop();
  await tb?.cleanup();
});

/**
 * A campaign over `n` keyring-wrapped rows whose source version in the keyring holds other material
 * than the rows were wrapped with: every unwrap fails (invalid-ciphertext). (A disabled
 * destination no longer reaches the canary: the scheduler pauses such a campaign at once,
 * target-kek-check.ts.)
 */
async function rowsUnderWrongMaterial(table: string, n: number, options: Record<string, number>, ledgerForm?: 'items') {
  const v1 = { id: table, version: '1', material: randomBytes(32) };
  const v2 = { id: table, version: '2', material: randomBytes(32) };
  await createEnvelopeTable(pipe.db.pool, table);
  await insertRows(pipe.db.pool, table, n, v1);
  return pipe.create({
    name: `${table} under the wrong material`,
    sources: [{ type: 'pg', table, idColumn: 'id', wrappedKeyColumn: 'wrapped_dek', kekIdColumn: 'kek_id', kekVersionColumn: 'kek_version' }],
    provider: { type: 'local', keyringFile: await pipe.keyringFile([{ ...v1, material: randomBytes(32) }, v2]) },
    from: `${table}@1`,
    to: `${table}@2`,
    options,
  }, true, ledgerForm);
}

describe('canary stage', () => {
  it('a passing canary (S3 objects read back and decrypted end to end) lets the campaign fan out and complete', async () => {
    const [a, b] = await Promise.all([0, 1].map(async () => (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!));
    const payloads = new Map<string, Buffer>();
    for (let i = 0; i < 300; i += 30) {
      await Promise.all(
        Array.from({ length: 30 }, async (_, j) => {
          const key = `c/${i + j}`;
          const payload = randomBytes(300);
          payloads.set(key, payload);
          await putEncrypted(s3, tb.bucket, key, payload, { placement: j % 2 ? 'instruction' : 'metadata', wrap: { kind: 'kms', kms, keyId: a, matdesc: { t: 'x' } } });
        }),
      );
    }
    const c = await pipe.create({ name: 'canary ok', sources: [{ type: 's3', bucket: tb.bucket }], provider: { type: 'kms' }, from: a, to: b, options: { canaryFraction: 0.01 } });
    const p = await pipe.waitFor(c.id, 'completed', (x) => x.state === 'completed' || x.state === 'paused', 180_000);
    expect(p.state).toBe('completed');
    expect((await getCampaign(pipe.db.pool, c.id))!.canaryState).toBe('passed');
    /* The canary's items count as rewrapped too: their batch found them at the target, the ledger kept the canary's move. */
    expect(p).toMatchObject({ rewrapped: 300, skipped: 0, failed: 0 });
    expect(pipe.scheduler.lines.some((l) => /canary passed/.test(l))).toBe(true);
    for (const [key, payload] of payloads) expect((await getDecrypted(s3, tb.bucket, key, { kms, kmsKeyId: b })).payload.equals(payload)).toBe(true);
    /* The audit trail has one event per store write, the canary's included (its items are later skipped as at the target). */
    const audit = pipe.logs().split('\n').filter((l) => l.includes('"event":"item.rewrapped"')).map((l) => JSON.parse(l) as { campaignId: string; item: string; canary?: boolean });
    const mine = audit.filter((e) => e.campaignId === c.id);
    expect(new Set(mine.map((e) => e.item)).size).toBe(300);
    expect(mine.length, 'one event per object').toBe(300);
    expect(mine.filter((e) => e.canary).length, 'the canary wrote 1% of 300 objects').toBe(3);
  }, 240_000); // its own wait allows 180 s: the suite's 120 s default cut it short on a loaded box

  it('a failing canary (source KEK material does not match the rows) stops the campaign before more than the canary fraction is written', async () => {
    const c = await rowsUnderWrongMaterial('canary_rows', 2000, { canaryFraction: 0.001 });
    const p = await pipe.waitFor(c.id, 'stopped', (x) => x.state === 'paused', 120_000);
    expect(p.pauseReason).toMatch(/canary failed: 2 of 2 items \(rewrap:invalid-ciphertext\)/);
    expect((await getCampaign(pipe.db.pool, c.id))!.canaryState).toBe('failed');
    const written = await pipe.db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM canary_rows WHERE kek_version <> '1'`);
    expect(Number(written.rows[0]!.n)).toBeLessThanOrEqual(Math.ceil(0.001 * 2000));
    expect(p.rewrapped + p.skipped + p.failed).toBe(0); // no batch ever went out
  });

  it('on a large scope the canary starts after canaryAfterItems planned items, not after the whole plan, and takes its fraction of those', async () => {
    const ROWS = 100_000;
    /* The per-item form: one of its planning steps (200 ms) cannot list 100,000 rows, so the canary runs on part of the plan (the batch form plans 100,000 rows in about one step). */
    const c = await rowsUnderWrongMaterial('canary_big', ROWS, { canaryFraction: 0.001, canaryAfterItems: 1000 }, 'items');
    const p = await pipe.waitFor(c.id, 'stopped', (x) => x.state === 'paused', 120_000);
    const m = /canary failed: (\d+) of (\d+) items \(rewrap:invalid-ciphertext\)/.exec(p.pauseReason ?? '');
    expect(m, p.pauseReason ?? '(no pause reason)').not.toBeNull();
    const canary = Number(m![2]);
    expect(canary).toBeGreaterThanOrEqual(1);
    expect(canary).toBeLessThan(Math.ceil(0.001 * ROWS));
    expect(p.planned).toBeGreaterThanOrEqual(1000);
    const written = await pipe.db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM canary_big WHERE kek_version <> '1'`);
    expect(Number(written.rows[0]!.n)).toBe(0); // no row unwraps: nothing could be written
    expect(p.rewrapped + p.skipped + p.failed).toBe(0);
  }, 180_000);
});
