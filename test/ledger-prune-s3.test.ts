/**
 * Issue 17, point 4: `rewrap ledger prune --archive s3://bucket/prefix` against RGW. The archive
 * object is read back (size and ETag, recorded in the campaign summary) before any row is
 * deleted; an archive object that already exists is never overwritten, and the prune then deletes
 * nothing of that campaign.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../src/stores/s3-client.ts';
import { freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { jsonOf, rewrapCli } from './support/cli.ts';
import { rowSource, rowTable } from './support/row-fixture.ts';

const r1 = { id: 'r', version: '1', material: randomBytes(32) };
const r2 = { id: 'r', version: '2', material: randomBytes(32) };
let pipe: Pipeline;
let s3: S3Client;
let bucket: TestBucket;
let campaignId: string;

const itemRows = async () =>
  (await pipe.db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM rewrap_campaign_items WHERE campaign_id = $1`, [campaignId])).rows[0]!.n;

beforeAll(async () => {
  pipe = await startPipeline({ label: 'prune-s3', workers: 1 });
  const env = s3TestEnv();
  s3 = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  bucket = await freshBucket(s3, 'prune-archive');
  const keyringFile = await pipe.keyringFile([r1, r2]);
  await rowTable(pipe.db.pool, 'box', 60, r1);
  // Per-item form: prune archives and deletes per-item detail; batch-form campaigns are not pruned yet (README, "The batch ledger form").
  const c = await pipe.create({ name: 'box r@1 -> r@2', sources: [rowSource('box')], provider: { type: 'local', keyringFile }, from: 'r@1', to: 'r@2', options: { batchSize: 20 } }, true, 'items');
  campaignId = c.id;
  await pipe.waitFor(c.id, 'completed', (p) => p.state === 'completed', 120_000);
}, 240_000);

afterAll(async () => {
  await pipe?.stop();
  await bucket?.cleanup();
});

describe('rewrap ledger prune --archive s3://', () => {
  it('an archive object already there is not overwritten, and nothing of the campaign is deleted', async () => {
    const key = `archive/2026/${campaignId}.completion.jsonl`;
    await s3.send(new PutObjectCommand({ Bucket: bucket.bucket, Key: key, Body: 'not ours' }));
    const r = await rewrapCli(pipe, ['ledger', 'prune', '--older-than', '0s', '--archive', `s3://${bucket.bucket}/archive/2026/`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`campaign ${campaignId}: cannot archive to s3://${bucket.bucket}/${key}`);
    expect(r.stderr).toMatch(/it already exists .*nothing of the campaign was deleted/);
    expect(await itemRows()).toBe(60);
    const body = await (await s3.send(new GetObjectCommand({ Bucket: bucket.bucket, Key: key }))).Body!.transformToString();
    expect(body).toBe('not ours');
    await s3.send(new DeleteObjectCommand({ Bucket: bucket.bucket, Key: key }));
  });

  it('archives the completion report to S3, reads back its size and ETag into the summary, then deletes the per-item rows', async () => {
    const r = await rewrapCli(pipe, ['ledger', 'prune', '--older-than', '0s', '--archive', `s3://${bucket.bucket}/archive/2026`, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = jsonOf<{ campaigns: { id: string; archive: { location: string; bytes: number; etag: string }; deleted: { items: number } }[] }>(r);
    const c = j.campaigns.find((x) => x.id === campaignId)!;
    const key = `archive/2026/${campaignId}.completion.jsonl`;
    expect(c.archive.location).toBe(`s3://${bucket.bucket}/${key}`);
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket.bucket, Key: key }));
    expect(c.archive).toEqual({ location: c.archive.location, bytes: head.ContentLength, etag: head.ETag });
    const lines = (await (await s3.send(new GetObjectCommand({ Bucket: bucket.bucket, Key: key }))).Body!.transformToString()).trim().split('\n');
    expect(lines).toHaveLength(60);
    expect(lines.every((l) => (JSON.parse(l) as { outcome: string }).outcome === 'rewrapped')).toBe(true);
    // All 60 are rewrapped: the newest per store and the sample (all of them, < 100) are kept.
    expect(c.deleted.items).toBe(0);
    const { rows } = await pipe.db.pool.query(`SELECT archive, archive_bytes::int AS bytes, archive_etag AS etag FROM rewrap_campaign_summaries WHERE campaign_id = $1`, [campaignId]);
    expect(rows[0]).toEqual({ archive: c.archive.location, bytes: head.ContentLength, etag: head.ETag });
    const batches = (await pipe.db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM rewrap_batches WHERE campaign_id = $1`, [campaignId])).rows[0]!.n;
    expect(batches).toBe(0);
  });
});
