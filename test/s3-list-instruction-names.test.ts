/**
 * How the planner's S3 listing treats `<key>.instruction` names (S3ListSource), against RGW and a
 * real ledger schema: the plan leaves them all out without a HeadObject; a delta pass checks every
 * one it lists, modified or not, except a file whose listed ETag is the one the campaign's worker
 * recorded for its item (envelope_file_etag, migration 8), which holds the bytes the worker saw
 * marked. Nothing is hidden by the shortcut (invariant 7): a file replaced since (another ETag)
 * is checked again, and an unmarked one is an item.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createS3Client, normalizeEtag } from '../src/stores/s3-client.ts';
import { S3ListSource } from '../src/sources/s3-list-source.ts';
import { instructionFilesSeen, migrate } from '../src/ledger/index.ts';
import { putEncrypted } from '../dev/reference/s3ec-client.ts';
import { freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';
import { freshSchema, type TestSchema } from './harness/pg.ts';
import { startTapProxy, type TapProxy } from './support/tap-proxy.ts';

const wrap = { kind: 'aes' as const, material: randomBytes(32), matdesc: { kek: 'k@1' } };
const CAMPAIGN = 'cinstrnames';
let s3: S3Client;
let viaTap: S3Client;
let tap: TapProxy;
let tb: TestBucket;
let db: TestSchema;
let storeId: string;
const heads: string[] = [];

const etagOf = async (key: string) => normalizeEtag((await s3.send(new HeadObjectCommand({ Bucket: tb.bucket, Key: key }))).ETag);

beforeAll(async () => {
  const env = s3TestEnv();
  s3 = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  tb = await freshBucket(s3, 'list-instr-names');
  storeId = `s3://${tb.bucket}`;
  tap = await startTapProxy(env.endpoint, (method, target) => {
    if (method === 'HEAD') heads.push(decodeURIComponent(new URL(target, 'http://x').pathname.split('/').slice(2).join('/')));
  });
  viaTap = createS3Client({ endpoint: tap.url, region: env.region, credentials: env });
  for (const key of ['a', 'b', 'c']) await putEncrypted(s3, tb.bucket, key, randomBytes(50), { placement: 'instruction', wrap });
  await putEncrypted(s3, tb.bucket, 'x.instruction', randomBytes(50), { placement: 'metadata', wrap }); // an item merely named so

  db = await freshSchema('list-instr-names');
  await migrate(db.pool);
  await db.pool.query(`INSERT INTO rewrap_campaigns (id, name, kind, spec, scopes, state) VALUES ($1, 'n', 'routine', '{}'::jsonb, '[]'::jsonb, 'running')`, [CAMPAIGN]);
  await db.pool.query(`INSERT INTO rewrap_batches (campaign_id, batch_no, store_id, item_count) VALUES ($1, 1, $2, 3)`, [CAMPAIGN, storeId]);
  // What the workers recorded: a.instruction as it is now; b.instruction as it was before an application replaced it; c nothing.
  const staleB = await etagOf('b.instruction');
  await putEncrypted(s3, tb.bucket, 'b.instruction', randomBytes(50), { placement: 'metadata', wrap }); // now an unmarked object
  await db.pool.query(
    `INSERT INTO rewrap_campaign_items (campaign_id, store_id, item_key, batch_no, outcome, envelope_file_etag)
     VALUES ($1, $2, 'a', 1, 'rewrapped', $3), ($1, $2, 'b', 1, 'rewrapped', $4), ($1, $2, 'c', 1, 'rewrapped', NULL)`,
    [CAMPAIGN, storeId, await etagOf('a.instruction'), staleB],
  );
}, 120_000);

afterAll(async () => {
  await tap?.close();
  await db?.drop();
  await tb?.cleanup();
});

const planningSource = () =>
  new S3ListSource(viaTap, tb.bucket, '', { instructionChecksInDeltaPass: true, instructionFilesSeen: (keys) => instructionFilesSeen(db.pool, CAMPAIGN, storeId, keys) });

describe('S3ListSource and .instruction names (planner)', () => {
  it('the plan lists the objects and leaves every .instruction name out, with no HeadObject', async () => {
    heads.length = 0;
    const page = await planningSource().page(null, 1000);
    expect(page.groups).toEqual([{ storeId, keys: ['a', 'b', 'c'] }]);
    expect(heads).toEqual([]);
  });

  it('a delta pass checks every .instruction name but the one whose ETag the worker recorded: the replaced and the unmarked ones are items (invariant 7)', async () => {
    heads.length = 0;
    // A pass begun an hour from now: no object counts as modified since, so only the names are left.
    const page = await planningSource().deltaPage(new Date(Date.now() + 3_600_000), null, 1000);
    expect(page.groups).toEqual([{ storeId, keys: ['b.instruction', 'x.instruction'] }]);
    expect(heads.sort()).toEqual(['b.instruction', 'c.instruction', 'x.instruction']);
  });

  it('without the planner options (dry runs, retirement) every name is checked in every pass', async () => {
    heads.length = 0;
    const page = await new S3ListSource(viaTap, tb.bucket).page(null, 1000);
    expect(page.groups).toEqual([{ storeId, keys: ['a', 'b', 'b.instruction', 'c', 'x.instruction'] }]);
    expect(heads.sort()).toEqual(['a.instruction', 'b.instruction', 'c.instruction', 'x.instruction']);
  });
});
