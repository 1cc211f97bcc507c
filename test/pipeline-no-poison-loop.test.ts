/**
 * Issue 13, point 6: no poison loops. One scheduler and one worker process, real RGW, Postgres
 * and Redis. An S3 object the store refuses to rewrite (RGW answers HTTP 400 to the self-copy
 * whose metadata no longer fits its request-header limit) fails as that item alone, with a
 * reason naming it, while the rest of its batch completes and decrypts under the new KEK; so does
 * a row KMS refuses with an error that is not throttling (ValidationException). A batch
 * that fails as a whole every time (its table was dropped) pauses its campaign after
 * maxBatchFailures (default 5) with the batch and the error as the reason, and its job leaves
 * Redis for good: neither BullMQ nor the feeder retries it forever.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import { CreateKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { createKmsClient } from '../src/kek/kms-client.ts';
import { parseCampaignSpec } from '../src/campaign/spec.ts';
import { Redis } from 'ioredis';
import type { Queue } from 'bullmq';
import { createS3Client } from '../src/stores/s3-client.ts';
import { getDecrypted, matdescKey, putEncrypted } from '../dev/reference/s3ec-client.ts';
import type { RowKek } from '../dev/reference/row-client.ts';
import { campaignFailures, getCampaign, setCampaignState } from '../src/ledger/index.ts';
import { freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { rowSource, rowTable } from './support/row-fixture.ts';
import { batchQueue, campaignJobTraces } from './support/queue-jobs.ts';
import { eventually } from './support/eventually.ts';
import { LeakGuard } from './support/leak-guard.ts';
import { expectKmsRowsUnder, kmsRowSource, kmsRowTable } from './support/kms-row-fixture.ts';
import { startKmsRejectProxy } from './support/kms-reject-proxy.ts';

const v1: RowKek = { id: 'k', version: '1', material: randomBytes(32) };
const v2: RowKek = { id: 'k', version: '2', material: randomBytes(32) };
const guard = new LeakGuard();
guard.secret(v1.material, v2.material);

let pipe: Pipeline;
let s3: S3Client;
let tb: TestBucket;
let redis: Redis;
let queue: Queue;
let keyringFile: string;

beforeAll(async () => {
  pipe = await startPipeline({ label: 'no-poison-loop', workers: 1 });
  const env = s3TestEnv();
  s3 = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  tb = await freshBucket(s3, 'no-poison-loop');
  redis = new Redis(pipe.redisUrl, { maxRetriesPerRequest: 2 });
  queue = batchQueue(redis, pipe.prefix);
  keyringFile = await pipe.keyringFile([v1, v2]);
}, 120_000);

afterAll(async () => {
  await pipe?.stop();
  await queue?.close();
  redis?.disconnect();
  await tb?.cleanup();
});

/**
 * The largest user-metadata filler with which the S3 server still takes the object, measured
 * (RGW refuses request headers over about 16 KiB with HTTP 400 and no error code; AWS refuses
 * user metadata over 2 KiB with MetadataTooLarge). rewrap's self-copy carries the same metadata
 * plus its stamp and the copy headers, so that object can be written once but never rewrapped.
 */
async function largestAcceptedFiller(wrap: Parameters<typeof putEncrypted>[4]['wrap']): Promise<number> {
  let lo = 0;
  let hi = 64 * 1024;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    const ok = await putEncrypted(s3, tb.bucket, 'probe', Buffer.from('p'), { placement: 'metadata', wrap, userMeta: { filler: 'x'.repeat(mid) } }).then(
      () => true,
      () => false,
    );
    if (ok) lo = mid;
    else hi = mid;
  }
  return lo;
}

describe('no poison loops (issue 13, point 6)', () => {
  it('an object the store refuses to rewrite fails alone (store-rejected, naming the S3 error); its batch completes and decrypts under the new KEK', async () => {
    const wrap = { kind: 'aes' as const, material: v1.material, matdesc: { kek: 'k@1' } };
    const filler = await largestAcceptedFiller(wrap);
    const payloads = new Map<string, Buffer>();
    for (let i = 0; i < 8; i++) {
      const key = `o/${i}`;
      payloads.set(key, randomBytes(100));
      await putEncrypted(s3, tb.bucket, key, payloads.get(key)!, { placement: 'metadata', wrap });
    }
    const BIG = 'o/big';
    await putEncrypted(s3, tb.bucket, BIG, Buffer.from('big'), { placement: 'metadata', wrap, userMeta: { filler: 'x'.repeat(filler) } });

    const c = await pipe.create({
      name: 'one object too big to rewrite',
      sources: [{ type: 's3', bucket: tb.bucket, prefix: 'o/' }],
      provider: { type: 'local', keyringFile },
      from: 'k@1',
      to: 'k@2',
      options: { batchSize: 50, concurrency: 4 },
    });
    const p = await pipe.waitFor(c.id, 'completed', (x) => x.state === 'completed' || x.state === 'paused', 90_000);
    expect(p).toMatchObject({ state: 'completed', planned: 9, rewrapped: 8, failed: 1, remaining: 0, pauseReason: null });

    const failures = await campaignFailures(pipe.db.pool, c.id, { limit: 10 });
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ storeId: `s3://${tb.bucket}`, itemKey: BIG, reason: 'store-rejected' });
    expect(failures[0]!.detail).toContain(BIG);
    expect(failures[0]!.detail).toMatch(/S3 refused the request \(.+, HTTP 400\)/);

    // The store: every other object decrypts under k@2; the refused one still under k@1.
    const aes2 = new Map([[matdescKey({ kek: 'k@2' }), v2.material]]);
    for (const [key, payload] of payloads) expect((await getDecrypted(s3, tb.bucket, key, { aes: aes2 })).payload.equals(payload), key).toBe(true);
    const aes1 = new Map([[matdescKey({ kek: 'k@1' }), v1.material]]);
    expect((await getDecrypted(s3, tb.bucket, BIG, { aes: aes1 })).payload.toString()).toBe('big');
  }, 150_000);

  type Refusal = { name: string; message: string; status?: number; rawBody?: string };
  const refusals: { title: string; answer: Refusal; reason: string; detail: RegExp }[] = [
    {
      title: 'a row KMS refuses with a non-throttling error (ValidationException) fails alone (provider-rejected, naming it)',
      answer: { name: 'ValidationException', message: '1 validation error detected (injected for this one ciphertext)' },
      reason: 'provider-rejected',
      detail: /^7: KMS ReEncrypt .* was refused: ValidationException \(HTTP 400\)/,
    },
    {
      // An answer no code path knows (a 200 whose body is not JSON: a broken proxy, a bug) is
      // still that row's failure, not its batch's: the batch would fail, retry and fail again.
      title: 'a row whose KMS answer rewrap cannot parse at all fails alone (unexpected-error, naming it)',
      answer: { name: 'garbage', message: '', status: 200, rawBody: '<html>not a KMS answer</html>' },
      reason: 'unexpected-error',
      detail: /^7: Error: KMS ReEncrypt .* failed with an unexpected answer/,
    },
  ];

  for (const { title, answer, reason, detail } of refusals) it(`${title}; the other rows move and decrypt`, async () => {
    const kms: KMSClient = createKmsClient({ endpoint: pipe.kms.url, region: 'us-east-1', credentials: { accessKeyId: 't', secretAccessKey: 't' } });
    try {
      const a = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
      const b = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
      const table = `kmsrows_${reason.replace('-', '_')}`;
      const { deks, blobs } = await kmsRowTable(pipe.db.pool, kms, table, 12, a);
      for (const d of deks.values()) guard.secret(d);
      const refused = blobs.get('7')!;
      // KMS (through the proxy) refuses every ReEncrypt of row 7's blob, as AWS refuses a request it finds invalid.
      const proxy = await startKmsRejectProxy(pipe.kms.url, (target, body) =>
        target.endsWith('.ReEncrypt') && body.includes(refused.toString('base64'))
          ? answer
          : undefined,
      );
      let campaignId: string;
      try {
        const c = await pipe.create({
          name: `one row refused by KMS (${reason})`,
          sources: [kmsRowSource(table)],
          provider: { type: 'kms', endpoint: proxy.url },
          from: a,
          to: b,
          options: { batchSize: 50, concurrency: 4 },
        });
        const p = await pipe.waitFor(c.id, 'completed', (x) => x.state === 'completed' || x.state === 'paused', 90_000);
        expect(p).toMatchObject({ state: 'completed', planned: 12, rewrapped: 11, failed: 1, remaining: 0, pauseReason: null });
        expect(proxy.rejected).toBeGreaterThanOrEqual(1);
        campaignId = c.id;
      } finally {
        await proxy.close();
      }
      const failures = await campaignFailures(pipe.db.pool, campaignId, { limit: 10 });
      expect(failures).toHaveLength(1);
      expect(failures[0]).toMatchObject({ storeId: `pg:${table}`, itemKey: '7', reason });
      expect(failures[0]!.detail).toMatch(detail);

      // The store: row 7 is byte for byte what it was; every other row decrypts under b to its DEK.
      const { rows } = await pipe.db.pool.query<{ wrapped_dek: Buffer; kek_id: string }>(`SELECT wrapped_dek, kek_id FROM ${table} WHERE id = 7`);
      expect(rows[0]!.kek_id).toBe(a);
      expect(rows[0]!.wrapped_dek.equals(refused)).toBe(true);
      await pipe.db.pool.query(`DELETE FROM ${table} WHERE id = 7`);
      expect(await expectKmsRowsUnder(pipe.db.pool, kms, table, b, deks)).toBe(11);
    } finally {
      kms.destroy();
    }
  }, 150_000);

  it('a batch that fails as a whole pauses its campaign after 5 failures with the batch and the error as the reason, and leaves Redis for good', async () => {
    await rowTable(pipe.db.pool, 'doomed', 20, v1);
    // Planned but not started: the table is dropped between planning and the first batch.
    const c = await pipe.create(
      {
        name: 'table dropped after planning',
        sources: [rowSource('doomed')],
        provider: { type: 'local', keyringFile },
        from: 'k@1',
        to: 'k@2',
        options: { batchSize: 50, concurrency: 4 },
      },
      false,
    );
    await eventually('the plan', async () => ((await getCampaign(pipe.db.pool, c.id))!.planDone ? true : undefined), 30_000, 100);
    expect((await pipe.progress(c.id)).planned).toBe(20);
    await pipe.db.pool.query('DROP TABLE doomed CASCADE');
    expect(await setCampaignState(pipe.db.pool, c.id, ['planning'], 'running')).toBe(true);

    const p = await pipe.waitFor(c.id, 'paused', (x) => x.state !== 'running', 90_000);
    expect(p.state).toBe('paused');
    expect(p.pauseReason).toMatch(/^auto-paused: batch 1 \(pg:doomed\) failed as a whole 5 times \(maxBatchFailures 5\); last error: .*doomed.*does not exist/);
    expect(p).toMatchObject({ rewrapped: 0, failed: 0, remaining: 20 });

    // The ledger counted exactly the five whole-batch failures, and the batch went back to
    // pending (withdrawn); the queue holds no trace of the campaign's job.
    const batch = async () =>
      (await pipe.db.pool.query<{ failures: number; state: string; last_error: string }>('SELECT failures, state, last_error FROM rewrap_batches WHERE campaign_id = $1', [c.id])).rows;
    await eventually('the job withdrawn from Redis', async () => {
      const [b] = await batch();
      const traces = await campaignJobTraces(redis, pipe.prefix, c.id);
      return b!.state === 'pending' && traces.length === 0 ? true : undefined;
    }, 30_000, 100);
    // The feeder does not re-add it: through three reconcile periods (REWRAP_RECONCILE_MS) the
    // count stays at 5, the batch pending, Redis empty of it (waiting for something NOT to happen).
    const until = Date.now() + 3 * Number(pipe.env.REWRAP_RECONCILE_MS);
    while (Date.now() < until) {
      const [b] = await batch();
      expect(b).toMatchObject({ failures: 5, state: 'pending' });
      expect(await campaignJobTraces(redis, pipe.prefix, c.id)).toEqual([]);
      await new Promise((r) => setTimeout(r, 200));
    }
    const [b] = await batch();
    expect(b!.last_error).toContain('does not exist');
    expect((await getCampaign(pipe.db.pool, c.id))!.state).toBe('paused');
  }, 150_000);

  it('maxBatchFailures defaults to 5 and must be an integer >= 1', () => {
    const spec = (options: object) => ({ name: 'x', sources: [rowSource('t')], provider: { type: 'local', keyringFile }, from: 'k@1', to: 'k@2', options });
    expect(parseCampaignSpec(spec({})).options.maxBatchFailures).toBe(5);
    expect(parseCampaignSpec(spec({ maxBatchFailures: 2 })).options.maxBatchFailures).toBe(2);
    for (const bad of [0, 1.5, -1, '5']) {
      expect(() => parseCampaignSpec(spec({ maxBatchFailures: bad })), String(bad)).toThrow(/^campaign spec\.options\.maxBatchFailures: expected/);
    }
  });

  it('no DEK or KEK bytes in any process log (invariant 5)', () => {
    guard.text(pipe.logs());
    expect(guard.findLeaks()).toEqual([]);
  });
});
