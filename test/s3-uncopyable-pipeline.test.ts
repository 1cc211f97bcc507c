/**
 * Issue 14, point 3, end to end: a bucket with ordinary S3EC V2 objects, objects in storage class
 * GLACIER and SSE-C objects (RGW 16 from scripts/rgw/start.sh makes both), all under k@1, rotated
 * to k@2 by real scheduler and worker processes. The ledger records `archived-storage-class` and
 * `sse-c-object` for exactly those objects, which are not modified, and `kek retire k@1` refuses
 * (invariant 7): they are still under k@1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, type PutObjectCommandInput, type S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../src/stores/s3-client.ts';
import { getDecrypted, matdescKey, putEncrypted } from '../dev/reference/s3ec-client.ts';
import { loadKeyringFile } from '../src/kek/keyring-file.ts';
import { freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { jsonOf, rewrapCli } from './support/cli.ts';
import { LeakGuard } from './support/leak-guard.ts';

const k1 = { id: 'k', version: '1', material: randomBytes(32) };
const k2 = { id: 'k', version: '2', material: randomBytes(32) };
const ssecKey = randomBytes(32);
const SSEC = {
  SSECustomerAlgorithm: 'AES256',
  SSECustomerKey: ssecKey.toString('base64'),
  SSECustomerKeyMD5: createHash('md5').update(ssecKey).digest('base64'),
};
const guard = new LeakGuard();
guard.secret(k1.material, k2.material, ssecKey);

let pipe: Pipeline;
let s3: S3Client;
let tb: TestBucket;
let keyringFile: string;

/** An S3EC V2 object under k@1, written again with `extra` (storage class, SSE-C). */
async function put(key: string, extra: Partial<PutObjectCommandInput>): Promise<void> {
  const staging = `staging/${key}`;
  await putEncrypted(s3, tb.bucket, staging, randomBytes(100), { placement: 'metadata', wrap: { kind: 'aes', material: k1.material, matdesc: { kek: 'k@1' } } });
  const h = await s3.send(new HeadObjectCommand({ Bucket: tb.bucket, Key: staging }));
  const body = await (await s3.send(new GetObjectCommand({ Bucket: tb.bucket, Key: staging }))).Body!.transformToByteArray();
  await s3.send(new PutObjectCommand({ Bucket: tb.bucket, Key: key, Body: body, Metadata: h.Metadata, ContentType: h.ContentType, ...extra }));
}

const state = async (key: string, extra: Record<string, string> = {}) => {
  const h = await s3.send(new HeadObjectCommand({ Bucket: tb.bucket, Key: key, ...extra }));
  return { etag: h.ETag, metadata: h.Metadata, lastModified: h.LastModified?.toISOString(), storageClass: h.StorageClass };
};

beforeAll(async () => {
  pipe = await startPipeline({ label: 'uncopyable', workers: 1 });
  const env = s3TestEnv();
  s3 = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  tb = await freshBucket(s3, 'uncopyable-pipeline');
  keyringFile = await pipe.keyringFile([k1, k2]);
  for (let i = 0; i < 4; i++) await put(`plain/${i}`, {});
  for (let i = 0; i < 2; i++) await put(`glacier/${i}`, { StorageClass: 'GLACIER' });
  for (let i = 0; i < 2; i++) await put(`ssec/${i}`, SSEC);
}, 180_000);

afterAll(async () => {
  await pipe?.stop();
  await tb?.cleanup();
  s3?.destroy();
});

describe('uncopyable objects through the pipeline (issue 14.3, invariant 7)', () => {
  it('GLACIER and SSE-C objects are recorded failed with their reason, untouched, and kek retire k@1 refuses over them', async () => {
    const before = {
      glacier: await Promise.all([0, 1].map((i) => state(`glacier/${i}`))),
      ssec: await Promise.all([0, 1].map((i) => state(`ssec/${i}`, SSEC))),
    };
    const c = await pipe.create({ name: 'k1 -> k2', sources: [{ type: 's3', bucket: tb.bucket, prefix: '' }], provider: { type: 'local', keyringFile }, from: 'k@1', to: 'k@2' });
    // The staging copies are items too: 8 under plain/, glacier/, ssec/ plus 8 staging objects.
    const p = await pipe.waitFor(c.id, 'completed', (x) => x.state === 'completed', 120_000);
    expect(p).toMatchObject({ planned: 16, rewrapped: 12, failed: 4 });

    const { rows } = await pipe.db.pool.query<{ item_key: string; reason: string }>(
      `SELECT item_key, reason FROM rewrap_campaign_items WHERE campaign_id = $1 AND outcome = 'failed' ORDER BY item_key`,
      [c.id],
    );
    expect(rows).toEqual([
      { item_key: 'glacier/0', reason: 'archived-storage-class' },
      { item_key: 'glacier/1', reason: 'archived-storage-class' },
      { item_key: 'ssec/0', reason: 'sse-c-object' },
      { item_key: 'ssec/1', reason: 'sse-c-object' },
    ]);
    expect(await Promise.all([0, 1].map((i) => state(`glacier/${i}`)))).toEqual(before.glacier);
    expect(await Promise.all([0, 1].map((i) => state(`ssec/${i}`, SSEC)))).toEqual(before.ssec);
    const underK2 = { aes: new Map([[matdescKey({ kek: 'k@2' }), k2.material]]) };
    for (let i = 0; i < 4; i++) expect((await getDecrypted(s3, tb.bucket, `plain/${i}`, underK2)).payload.length).toBe(100);

    const r = await rewrapCli(pipe, ['kek', 'retire', 'k@1', '--json', '--grace', '1s']);
    guard.text(r.stdout, r.stderr);
    const json = jsonOf<{ retired: boolean; failedByReason: { storeId: string; reason: string; items: number }[] }>(r);
    expect(r.code, JSON.stringify(json)).toBe(3);
    expect(json.retired).toBe(false);
    expect(json.failedByReason).toEqual(
      expect.arrayContaining([
        { storeId: `s3://${tb.bucket}`, reason: 'archived-storage-class', items: 2 },
        { storeId: `s3://${tb.bucket}`, reason: 'sse-c-object', items: 2 },
      ]),
    );
    expect(loadKeyringFile(keyringFile).map((e) => `${e.id}@${e.version}:${e.state}`)).toContain('k@1:enabled');
  }, 240_000);
});
