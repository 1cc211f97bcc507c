/**
 * Retiring a KEK whose campaign rotated a requester-pays bucket one does not own (issue 14.3 with
 * invariant 7): the retirement gate's own S3 requests (GetBucketVersioning and the noncurrent walk,
 * the full pass's listing and reads) go as requester too, like the campaign's. Before, the gate
 * asked without the header, got the bucket's 403, and refused with "cannot tell whether the bucket
 * keeps noncurrent versions ... grant s3:GetBucketVersioning": advice that fixes nothing and
 * points at --allow-noncurrent-versions. Real scheduler, worker and CLI processes, RGW behind a
 * front that answers as AWS answers a non-owner (support/requester-pays-front.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../src/stores/s3-client.ts';
import { getDecrypted, matdescKey, putEncrypted } from '../dev/reference/s3ec-client.ts';
import { loadKeyringFile } from '../src/kek/keyring-file.ts';
import { freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { jsonOf, rewrapCli } from './support/cli.ts';
import { requesterPaysFront, type RequesterPaysFront } from './support/requester-pays-front.ts';
import { LeakGuard } from './support/leak-guard.ts';

const p1 = { id: 'rp', version: '1', material: randomBytes(32) };
const p2 = { id: 'rp', version: '2', material: randomBytes(32) };
const OBJECTS = 12;
const guard = new LeakGuard();
guard.secret(p1.material, p2.material);

let front: RequesterPaysFront;
let pipe: Pipeline;
let s3: S3Client;
let bucket: TestBucket;
const bodies = new Map<string, Buffer>();

beforeAll(async () => {
  const env = s3TestEnv();
  s3 = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  bucket = await freshBucket(s3, 'retire-rp');
  for (let i = 0; i < OBJECTS; i++) {
    const key = `rp/${i}`;
    const body = randomBytes(64);
    bodies.set(key, body);
    await putEncrypted(s3, bucket.bucket, key, body, { placement: i % 3 === 0 ? 'instruction' : 'metadata', wrap: { kind: 'aes', material: p1.material, matdesc: { kek: 'rp@1' } } });
  }
  front = await requesterPaysFront(env.endpoint);
  pipe = await startPipeline({ label: 'retire-rp', workers: 1, env: { S3_ENDPOINT: front.url } });
}, 180_000);

afterAll(async () => {
  await pipe?.stop();
  await front?.close();
  await bucket?.cleanup();
});

describe('kek retire after rotating a requester-pays bucket', () => {
  it('the gate checks versioning, lists and reads the bucket as requester, and retires rp@1 with every object under rp@2', async () => {
    const keyringFile = await pipe.keyringFile([p1, p2]);
    const c = await pipe.create({
      name: 'requester-pays',
      sources: [{ type: 's3', bucket: bucket.bucket, requesterPays: true }],
      provider: { type: 'local', keyringFile },
      from: 'rp@1',
      to: 'rp@2',
      options: { batchSize: 5 },
    });
    expect(await pipe.waitFor(c.id, 'completed', (p) => p.state === 'completed', 120_000)).toMatchObject({ planned: OBJECTS, rewrapped: OBJECTS, failed: 0 });

    front.seen.length = 0;
    const r = await rewrapCli(pipe, ['kek', 'retire', 'rp@1', '--delete', '--json', '--grace', '0']);
    guard.text(r.stdout, r.stderr);
    const json = jsonOf<{ retired: boolean; blockers: string[]; fullPass?: { checked: number } }>(r);
    expect(json.blockers).toEqual([]);
    expect(r.code, r.stderr).toBe(0);
    expect(json).toMatchObject({ retired: true, fullPass: { checked: OBJECTS } });
    expect(front.seen.some((q) => q.path.includes('versioning'))).toBe(true);
    expect(front.seen.filter((q) => !q.payer)).toEqual([]);
    expect(loadKeyringFile(keyringFile).map((e) => `${e.id}@${e.version}`)).toEqual(['rp@2']);
    const under2 = { aes: new Map([[matdescKey({ kek: 'rp@2' }), p2.material]]) };
    for (const [key, body] of bodies) expect((await getDecrypted(s3, bucket.bucket, key, under2)).payload.equals(body), key).toBe(true);
  }, 240_000);

  it('no key bytes in any process log or CLI output (invariant 5)', () => {
    guard.text(pipe.logs());
    expect(guard.findLeaks()).toEqual([]);
  });
});
