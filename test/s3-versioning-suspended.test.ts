/**
 * Versioning-suspended buckets: nothing lost. S3 keeps at most one version with id "null" per key
 * there, and every write of the key replaces it. Measured on this RGW before the fix:
 *   - a self-copy of an object whose current version has a real id destroyed its older null
 *     version (the pre-versioning copy): rewrap deleted data the user kept;
 *   - the sweep's DeleteObject ?versionId=null deletes whatever the key's latest write in the
 *     suspended bucket was: after the application PUT the key again, that is its current object.
 * Now a rewrite that would replace a null version fails the item (null-version-would-be-replaced,
 * nothing written) and the sweep deletes a null version only while the bucket's versioning is
 * Enabled. Real RGW, scheduler and worker processes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { GetObjectCommand, HeadObjectCommand, PutBucketVersioningCommand, type S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../src/stores/s3-client.ts';
import { getDecrypted, matdescKey, putEncrypted } from '../dev/reference/s3ec-client.ts';
import { freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { LeakGuard } from './support/leak-guard.ts';
import { rewrapCli, specFile } from './support/cli.ts';

const k1 = { id: 'k', version: '1', material: randomBytes(32) };
const k2 = { id: 'k', version: '2', material: randomBytes(32) };
const guard = new LeakGuard();
guard.secret(k1.material, k2.material);
const wrapOf = (k: typeof k1) => ({ kind: 'aes' as const, material: k.material, matdesc: { kek: `${k.id}@${k.version}` } });
const underK2 = { aes: new Map([[matdescKey({ kek: 'k@2' }), k2.material]]) };

let pipe: Pipeline;
let s3: S3Client;
let suspended: TestBucket;
let enabled: TestBucket;
const payloads = new Map<string, Buffer>();

async function put(bucket: string, key: string, kek: typeof k1, placement: 'metadata' | 'instruction' = 'metadata') {
  const payload = randomBytes(64);
  await putEncrypted(s3, bucket, key, payload, { placement, wrap: wrapOf(kek) });
  payloads.set(`${bucket}/${key}`, payload);
}

const versioning = (Bucket: string, Status: 'Enabled' | 'Suspended') => s3.send(new PutBucketVersioningCommand({ Bucket, VersioningConfiguration: { Status } }));

/** A version's bytes and user metadata (its envelope, for metadata placement), or undefined when it is gone. */
async function version(bucket: string, key: string, versionId: string) {
  try {
    const o = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }));
    return { body: Buffer.from(await o.Body!.transformToByteArray()).toString('base64'), meta: o.Metadata ?? {} };
  } catch (err) {
    if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return undefined;
    throw err;
  }
}

/** The null versions written before versioning was enabled, as they were: they must come out unchanged. */
const before = new Map<string, Awaited<ReturnType<typeof version>>>();

beforeAll(async () => {
  pipe = await startPipeline({ label: 'versioning-suspended', workers: 1 });
  const env = s3TestEnv();
  s3 = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  suspended = await freshBucket(s3, 'suspended');
  enabled = await freshBucket(s3, 'enabled');
  const S = suspended.bucket;
  // Before versioning: the null versions, all under k@1.
  await put(S, 'x', k1);
  await put(S, 'w', k1);
  await put(S, 'i', k1, 'instruction');
  await put(enabled.bucket, 'e', k1);
  for (const b of [S, enabled.bucket]) await versioning(b, 'Enabled');
  // Rewritten while versioning was on: each current version has a real id, the null one is older.
  await put(S, 'x', k1);
  await put(S, 'w', k2); // the application already moved it: nothing to rewrite
  await put(S, 'i', k1, 'instruction');
  await put(S, 'n', k1); // never had a null version
  await put(enabled.bucket, 'e', k1);
  await versioning(S, 'Suspended');
  await put(S, 's', k1); // written while suspended: its current version is the null one
  for (const key of ['x', 'w', 'i.instruction']) before.set(key, await version(S, key, 'null'));
  before.set('e', await version(enabled.bucket, 'e', 'null'));
}, 180_000);

afterAll(async () => {
  await pipe?.stop();
  await suspended?.cleanup();
  await enabled?.cleanup();
});

describe('versioning-suspended buckets: no null version is replaced or deleted', () => {
  let campaignId: string;

  it('campaign create (and its dry run) warns, naming the suspended bucket and not the enabled one', async () => {
    const keyringFile = await pipe.keyringFile([k1, k2]);
    const file = await specFile(pipe, { name: 'suspended dry run', sources: [{ type: 's3', bucket: suspended.bucket }, { type: 's3', bucket: enabled.bucket }], provider: { type: 'local', keyringFile }, from: 'k@1', to: 'k@2' });
    const r = await rewrapCli(pipe, ['campaign', 'create', '--spec', file, '--dry-run']);
    guard.text(r.stdout, r.stderr);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`warning: versioning is Suspended on s3://${suspended.bucket}: an object whose current version was written while versioning was on`);
    expect(r.stderr).not.toContain(enabled.bucket);
  }, 60_000);

  it('a rewrite that would replace an older null version fails the item, nothing written; the others move to k@2', async () => {
    const keyringFile = await pipe.keyringFile([k1, k2]);
    const c = await pipe.create({
      name: 'suspended',
      sources: [{ type: 's3', bucket: suspended.bucket }, { type: 's3', bucket: enabled.bucket }],
      provider: { type: 'local', keyringFile },
      from: 'k@1',
      to: 'k@2',
      options: { batchSize: 5, allowUnconditionalWrites: true, noncurrentVersions: 'delete' },
    });
    campaignId = c.id;
    const done = await pipe.waitFor(c.id, 'completed', (p) => p.state === 'completed', 120_000);
    expect(done).toMatchObject({ rewrapped: 3, failed: 2 }); // s, n, e moved; x and i refused; w already at k@2
    const { rows } = await pipe.db.pool.query(
      `SELECT item_key, reason, detail FROM rewrap_campaign_items WHERE campaign_id = $1 AND outcome = 'failed' ORDER BY item_key`,
      [c.id],
    );
    expect(rows.map((r) => [r.item_key, r.reason])).toEqual([['i', 'null-version-would-be-replaced'], ['x', 'null-version-would-be-replaced']]);
    expect(rows[1].detail).toContain(`versioning is Suspended on bucket ${suspended.bucket}`);
    expect(rows[1].detail).toContain('Enable versioning on the bucket');
    for (const key of ['s', 'n']) {
      const d = await getDecrypted(s3, suspended.bucket, key, underK2);
      expect(d.payload.equals(payloads.get(`${suspended.bucket}/${key}`)!), key).toBe(true);
    }
    const e = await getDecrypted(s3, enabled.bucket, 'e', underK2);
    expect(e.payload.equals(payloads.get(`${enabled.bucket}/e`)!)).toBe(true);
    // The refused ones are untouched: still under k@1 (they keep k@1 from retirement).
    const x = await s3.send(new HeadObjectCommand({ Bucket: suspended.bucket, Key: 'x' }));
    expect(JSON.parse(x.Metadata!['x-amz-matdesc']!)).toEqual({ kek: 'k@1' });
  }, 180_000);

  it('every null version in the suspended bucket is still there, byte for byte; the sweep kept them, naming why', async () => {
    for (const key of ['x', 'w', 'i.instruction']) expect(await version(suspended.bucket, key, 'null'), key).toEqual(before.get(key));
    const { rows } = await pipe.db.pool.query(
      `SELECT item_key, version_id, state, reason FROM rewrap_noncurrent_versions WHERE campaign_id = $1 AND store_id = $2 ORDER BY item_key, version_id`,
      [campaignId, `s3://${suspended.bucket}`],
    );
    const nulls = rows.filter((r) => r.version_id === 'null').map((r) => [r.item_key, r.state, r.reason]);
    expect(nulls).toEqual([
      ['i.instruction', 'exposed', 'current-under-source'],
      ['w', 'exposed', 'null-version-suspended'],
      ['x', 'exposed', 'current-under-source'],
    ]);
    // n's version from before the rewrite has a real id: deleting it by that id is safe, and done.
    expect(rows.filter((r) => r.item_key === 'n').map((r) => r.state)).toEqual(['deleted']);
  });

  it('in a bucket whose versioning is Enabled the sweep still deletes the null version under k@1', async () => {
    expect(before.get('e')).toBeDefined();
    expect(await version(enabled.bucket, 'e', 'null')).toBeUndefined();
    const { rows } = await pipe.db.pool.query(`SELECT version_id, state FROM rewrap_noncurrent_versions WHERE campaign_id = $1 AND store_id = $2 ORDER BY version_id`, [
      campaignId,
      `s3://${enabled.bucket}`,
    ]);
    expect(rows.filter((r) => r.version_id === 'null')).toEqual([{ version_id: 'null', state: 'deleted' }]);
  });

  it('no key bytes in any process log (invariant 5)', () => {
    guard.text(pipe.logs());
    expect(guard.findLeaks()).toEqual([]);
  });
});
