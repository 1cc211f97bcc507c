/**
 * Issue 17, point 7 (invariant 7): a campaign planned from a report (an `s3-manifest` here; an
 * `s3-inventory` source takes the same path) has an empty delta pass: a report is a fixed list.
 * Objects written under the old KEK after the report was taken, or never in it, are in none of its
 * batches. `kek retire --delete` (the real CLI, real scheduler and worker processes, RGW) must not
 * take the report's word for the bucket: its full pass lists the whole bucket, reads each object
 * wherever its envelope is (metadata or instruction file, whatever the report's placement), refuses
 * naming the bucket and the count, and the KEK's material stays; an object naming a KEK the keyring
 * does not have blocks too (cannot tell). Once those objects are rotated (or gone), it retires.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CopyObjectCommand, DeleteObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../src/stores/s3-client.ts';
import { getDecrypted, matdescKey, putEncrypted } from '../dev/reference/s3ec-client.ts';
import { loadKeyringFile } from '../src/kek/keyring-file.ts';
import { freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { jsonOf, rewrapCli } from './support/cli.ts';
import { LeakGuard } from './support/leak-guard.ts';

const m1 = { id: 'm', version: '1', material: randomBytes(32) };
const m2 = { id: 'm', version: '2', material: randomBytes(32) };
const guard = new LeakGuard();
guard.secret(m1.material, m2.material);

let pipe: Pipeline;
let s3: S3Client;
let bucket: TestBucket;
let keyringFile: string;
let dir: string;
const bodies = new Map<string, Buffer>();

interface RetireJson {
  retired: boolean;
  action: string | null;
  blockers: string[];
  fullPass?: { checked: number; underKek: Record<string, number>; failed: unknown[]; underOtherKek: number };
}

async function retire(...args: string[]): Promise<{ code: number; json: RetireJson }> {
  const r = await rewrapCli(pipe, ['kek', 'retire', 'm@1', '--json', '--grace', '0', ...args]);
  guard.text(r.stdout, r.stderr);
  return { code: r.code, json: jsonOf<RetireJson>(r) };
}

const aes = (k: typeof m1) => ({ kind: 'aes' as const, material: k.material, matdesc: { kek: `${k.id}@${k.version}` } });
/** Decrypts with only that KEK (an S3EC V2 reader would): the payload, or a throw. */
const payloadUnder = async (key: string, k: typeof m1) =>
  (await getDecrypted(s3, bucket.bucket, key, { aes: new Map([[matdescKey({ kek: `${k.id}@${k.version}` }), k.material]]) })).payload;

async function put(key: string): Promise<void> {
  const body = randomBytes(100);
  bodies.set(key, body);
  await putEncrypted(s3, bucket.bucket, key, body, { placement: key.endsWith('i') ? 'instruction' : 'metadata', wrap: aes(m1) });
}

/** Flips a byte of the object's wrapped key (x-amz-key-v2) in place; returns what puts it back. */
async function corruptWrappedKey(key: string): Promise<() => Promise<void>> {
  const head = await s3.send(new HeadObjectCommand({ Bucket: bucket.bucket, Key: key }));
  const meta = head.Metadata!;
  const wrapped = Buffer.from(meta['x-amz-key-v2']!, 'base64');
  wrapped[4] ^= 0xff;
  const replace = (m: Record<string, string>) =>
    s3.send(new CopyObjectCommand({ Bucket: bucket.bucket, Key: key, CopySource: `${bucket.bucket}/${key}`, MetadataDirective: 'REPLACE', Metadata: m, ContentType: head.ContentType }));
  await replace({ ...meta, 'x-amz-key-v2': wrapped.toString('base64') });
  return async () => void (await replace(meta));
}

beforeAll(async () => {
  pipe = await startPipeline({ label: 'retire-report', workers: 1 });
  const env = s3TestEnv();
  s3 = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  bucket = await freshBucket(s3, 'retire-report');
  keyringFile = await pipe.keyringFile([m1, m2]);
  dir = await mkdtemp(join(tmpdir(), 'rewrap-retire-report-'));
}, 180_000);

afterAll(async () => {
  await pipe?.stop();
  await bucket?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function rotateManifest(name: string, keys: string[], placement?: 'metadata') {
  const manifestFile = join(dir, `${name}.csv`);
  await writeFile(manifestFile, keys.map((k) => `${bucket.bucket},${k}\n`).join(''));
  const c = await pipe.create({ name, sources: [{ type: 's3-manifest', manifestFile, ...(placement ? { placement } : {}) }], provider: { type: 'local', keyringFile }, from: 'm@1', to: 'm@2', options: { batchSize: 10 } });
  return pipe.waitFor(c.id, 'completed', (p) => p.state === 'completed', 120_000);
}

describe('kek retire after a campaign planned from a report (issue 17 point 7, invariant 7)', () => {
  it('objects the report did not list (written after it was taken) block --delete, found listing the whole bucket, whatever the report\'s placement; m@1 keeps its material until they are rotated too', async () => {
    const listed = Array.from({ length: 20 }, (_, i) => `listed/${i}`);
    /* One in an instruction file: the report's placement ("metadata") says nothing of objects outside it. */
    const late = ['late/0', 'late/1', 'late/2i'];
    await Promise.all(listed.map(put));
    const p = await rotateManifest('report', listed, 'metadata');
    expect(p).toMatchObject({ planned: 20, rewrapped: 20, skipped: 0, failed: 0 });
    // Written under the old KEK after the report was taken: the campaign (and its delta pass) never saw them.
    await Promise.all(late.map(put));
    /* And an object whose matdesc names a KEK this keyring does not have (another team's, or r@1's own
       material written by a client that ignores matdesc: a matdesc is no proof): it blocks, named. */
    await putEncrypted(s3, bucket.bucket, 'foreign/0', randomBytes(100), { placement: 'metadata', wrap: { kind: 'aes', material: randomBytes(32), matdesc: { kek: 'other-team@1' } } });

    const refused = await retire('--delete');
    expect(refused.code, JSON.stringify(refused.json)).toBe(3);
    expect(refused.json.retired).toBe(false);
    const store = `s3://${bucket.bucket}`;
    expect(refused.json.fullPass).toMatchObject({ checked: 24, underKek: { [store]: 3 }, failed: [expect.objectContaining({ itemKey: 'foreign/0', problem: expect.stringMatching(/no keyring KEK matches/) })] });
    expect(refused.json.blockers).toContainEqual(`${store}: 3 item(s) under m@1 found re-reading the store`);
    expect(loadKeyringFile(keyringFile).map((e) => `${e.id}@${e.version}:${e.state}`)).toContain('m@1:enabled');
    for (const k of late) expect((await payloadUnder(k, m1)).equals(bodies.get(k)!)).toBe(true);

    // The next report lists them; once they moved, the full pass finds nothing under m@1 and the material goes.
    expect(await rotateManifest('next-report', late)).toMatchObject({ planned: 3, rewrapped: 3 });
    await s3.send(new DeleteObjectCommand({ Bucket: bucket.bucket, Key: 'foreign/0' })); // its owner moves it elsewhere
    // An envelope naming a KEK the keyring has that does not authenticate (a corrupt write) still blocks: it is no other team's object.
    const restore = await corruptWrappedKey('listed/5');
    const corrupt = await retire('--delete');
    expect(corrupt.code, JSON.stringify(corrupt.json)).toBe(3);
    expect(corrupt.json.fullPass?.failed).toEqual([expect.objectContaining({ itemKey: 'listed/5', problem: expect.stringMatching(/does not authenticate under m@2/) })]);
    await restore();
    const retired = await retire('--delete');
    expect(retired.code, JSON.stringify(retired.json)).toBe(0);
    expect(retired.json.fullPass).toMatchObject({ checked: 23, underKek: {}, failed: [] });
    expect(loadKeyringFile(keyringFile).map((e) => `${e.id}@${e.version}`)).not.toContain('m@1');
    for (const k of [...listed, ...late]) expect((await payloadUnder(k, m2)).equals(bodies.get(k)!)).toBe(true);
  }, 240_000);
});
