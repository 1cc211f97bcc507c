/**
 * Invariant 7 for versioned buckets: every rewrite of an object in a versioned bucket leaves a
 * noncurrent version whose DEK is still wrapped under the old KEK. With the default
 * `"noncurrentVersions": "report"`, `kek retire` (the real CLI) counts them from the bucket and
 * refuses, naming the bucket and the count, and goes ahead only when the operator accepts losing
 * those versions (--allow-noncurrent-versions, which still lists them). Real RGW, scheduler and
 * worker processes. (test/noncurrent-versions.test.ts covers delete, keep and object lock.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { HeadObjectCommand, ListObjectVersionsCommand, PutBucketVersioningCommand, type S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../src/stores/s3-client.ts';
import { getDecrypted, matdescKey, putEncrypted } from '../dev/reference/s3ec-client.ts';
import { loadKeyringFile } from '../src/kek/keyring-file.ts';
import { freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { jsonOf, rewrapCli } from './support/cli.ts';
import { LeakGuard } from './support/leak-guard.ts';

const k1 = { id: 'k', version: '1', material: randomBytes(32) };
const k2 = { id: 'k', version: '2', material: randomBytes(32) };
const guard = new LeakGuard();
guard.secret(k1.material, k2.material);

let pipe: Pipeline;
let s3: S3Client;
let tb: TestBucket;
let keyringFile: string;

beforeAll(async () => {
  pipe = await startPipeline({ label: 'retire-versioned', workers: 1 });
  const env = s3TestEnv();
  s3 = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  tb = await freshBucket(s3, 'retire-versioned');
  await s3.send(new PutBucketVersioningCommand({ Bucket: tb.bucket, VersioningConfiguration: { Status: 'Enabled' } }));
  keyringFile = await pipe.keyringFile([k1, k2]);
  const wrap = { kind: 'aes' as const, material: k1.material, matdesc: { kek: 'k@1' } };
  await Promise.all(Array.from({ length: 10 }, (_, i) => putEncrypted(s3, tb.bucket, `o/${i}`, randomBytes(64), { placement: 'metadata', wrap })));
}, 180_000);

afterAll(async () => {
  await pipe?.stop();
  await tb?.cleanup();
});

async function retire(...args: string[]) {
  const r = await rewrapCli(pipe, ['kek', 'retire', 'k@1', '--json', '--grace', '0', ...args]);
  guard.text(r.stdout, r.stderr);
  return { code: r.code, stdout: r.stdout, json: jsonOf<{ retired: boolean; action: string | null; blockers: string[]; noncurrent: unknown[] }>(r) };
}

describe('kek retire and versioned buckets (invariant 7)', () => {
  it('a versioned bucket rotated k@1 -> k@2 keeps noncurrent versions under k@1: retire --delete refuses naming the bucket, k@1 stays; --allow-noncurrent-versions retires it', async () => {
    const c = await pipe.create({ name: 'versioned', sources: [{ type: 's3', bucket: tb.bucket }], provider: { type: 'local', keyringFile }, from: 'k@1', to: 'k@2', options: { batchSize: 5 } });
    const p = await pipe.waitFor(c.id, 'completed', (x) => x.state === 'completed', 120_000);
    expect(p).toMatchObject({ planned: 10, rewrapped: 10, failed: 0 });
    const underK2 = { aes: new Map([[matdescKey({ kek: 'k@2' }), k2.material]]) };
    for (let i = 0; i < 10; i++) expect((await getDecrypted(s3, tb.bucket, `o/${i}`, underK2)).payload.length).toBe(64);

    // What the gate protects: each object's previous version still names k@1.
    const versions = (await s3.send(new ListObjectVersionsCommand({ Bucket: tb.bucket }))).Versions ?? [];
    const noncurrent = versions.filter((v) => !v.IsLatest);
    expect(noncurrent).toHaveLength(10);
    for (const v of noncurrent) {
      const head = await s3.send(new HeadObjectCommand({ Bucket: tb.bucket, Key: v.Key, VersionId: v.VersionId }));
      expect(head.Metadata?.['x-amz-matdesc']).toBe('{"kek":"k@1"}');
    }

    const refused = await retire('--delete');
    expect(refused.code, JSON.stringify(refused.json)).toBe(3);
    expect(refused.json.action).toBeNull();
    expect(refused.json.blockers).toContainEqual(expect.stringMatching(new RegExp(`^s3://${tb.bucket}: 10 noncurrent version\\(s\\) still under k@1: the newest campaign over their keys reports them`)));
    expect(loadKeyringFile(keyringFile).map((e) => `${e.id}@${e.version}:${e.state}`)).toContain('k@1:enabled');

    // A newer campaign from k@1 that keeps noncurrent versions, over another prefix, says nothing of o/'s: they still block.
    const keepOther = await pipe.create({ name: 'keep a/', sources: [{ type: 's3', bucket: tb.bucket, prefix: 'a/' }], provider: { type: 'local', keyringFile }, from: 'k@1', to: 'k@2', options: { noncurrentVersions: 'keep' } });
    await pipe.waitFor(keepOther.id, 'completed', (x) => x.state === 'completed', 120_000);
    const stillRefused = await retire('--delete');
    expect(stillRefused.code, JSON.stringify(stillRefused.json)).toBe(3);
    expect(stillRefused.json.blockers).toContainEqual(expect.stringMatching(new RegExp(`^s3://${tb.bucket}: 10 noncurrent version\\(s\\) still under k@1: the newest campaign over their keys reports them`)));

    const accepted = await retire('--delete', '--allow-noncurrent-versions');
    expect(accepted.code, JSON.stringify(accepted.json)).toBe(0);
    expect(accepted.json.action).toBe('deleted');
    expect(accepted.json.noncurrent).toEqual([{ storeId: `s3://${tb.bucket}`, mode: 'report', versions: 10, lockedByReason: {}, blocking: false }]);
    expect(loadKeyringFile(keyringFile).map((e) => `${e.id}@${e.version}`)).not.toContain('k@1');
  }, 240_000);

  it('no key bytes in any process log or CLI output (invariant 5)', () => {
    guard.text(pipe.logs());
    expect(guard.findLeaks()).toEqual([]);
  });
});
