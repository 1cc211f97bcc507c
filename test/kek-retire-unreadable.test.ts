/**
 * Issue 13, point 1 (invariant 7): `kek retire` counts what rewrap cannot read. A bucket of S3EC V2
 * objects and S3EC V1 objects under k@1 (as buckets written before a V2 migration are), rotated
 * to k@2 by real scheduler and worker processes against RGW: the V1 objects fail
 * `unsupported-v1`, and `kek retire k@1 --grace 1s --delete` (the real CLI) must refuse, naming
 * the store, the count and the reason, and keep k@1 in the keyring. An unreadable envelope whose
 * matdesc names another KEK frees the item; one naming none that can be decided blocks. An object
 * merely named `<key>.instruction` (no instruction-file marker) is an item and is rotated.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../src/stores/s3-client.ts';
import { getDecrypted, headMeta, matdescKey, putEncrypted } from '../dev/reference/s3ec-client.ts';
import { loadKeyringFile } from '../src/kek/keyring-file.ts';
import { freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { jsonOf, rewrapCli } from './support/cli.ts';
import { LeakGuard } from './support/leak-guard.ts';

const k1 = { id: 'k', version: '1', material: randomBytes(32) };
const k2 = { id: 'k', version: '2', material: randomBytes(32) };
const j1 = { id: 'j', version: '1', material: randomBytes(32) };
const j2 = { id: 'j', version: '2', material: randomBytes(32) };
const o1 = { id: 'o', version: '1', material: randomBytes(32) };
const guard = new LeakGuard();
guard.secret(k1.material, k2.material, j1.material, j2.material, o1.material);

let pipe: Pipeline;
let s3: S3Client;
let a: TestBucket;
let b: TestBucket;
let keyringFile: string;

interface RetireJson {
  retired: boolean;
  action: string | null;
  blockers: string[];
  failedByReason: { storeId: string; reason: string; items: number }[];
  fullPass?: { checked: number; mayBeUnderKek: { storeId: string; reason: string; items: number }[]; underOtherKek: number };
}

const b64 = (n: number) => randomBytes(n).toString('base64');

/** An object as the S3 Encryption Client V1 writes it: x-amz-key (not x-amz-key-v2), a CBC IV, its matdesc. */
async function putV1(bucket: string, key: string, matdesc: Record<string, string>): Promise<void> {
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: randomBytes(112),
      Metadata: { 'x-amz-key': b64(48), 'x-amz-iv': b64(16), 'x-amz-matdesc': JSON.stringify(matdesc), 'x-amz-unencrypted-content-length': '100' },
    }),
  );
}

async function retire(kek: string, ...args: string[]): Promise<{ code: number; json: RetireJson }> {
  const r = await rewrapCli(pipe, ['kek', 'retire', kek, '--json', ...args]);
  guard.text(r.stdout, r.stderr);
  return { code: r.code, json: jsonOf<RetireJson>(r) };
}

/** Waits until `--grace 1s` has passed since the campaign's last move, so only what is under the KEK can refuse. */
async function graceOver(campaignId: string): Promise<void> {
  const { rows } = await pipe.db.pool.query<{ at: Date }>(`SELECT max(done_at) AS at FROM rewrap_campaign_items WHERE campaign_id = $1`, [campaignId]);
  const wait = rows[0]!.at.getTime() + 1500 - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}

beforeAll(async () => {
  pipe = await startPipeline({ label: 'retire-unreadable', workers: 1 });
  const env = s3TestEnv();
  s3 = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  a = await freshBucket(s3, 'retire-v1');
  b = await freshBucket(s3, 'retire-names');
  keyringFile = await pipe.keyringFile([k1, k2, j1, j2, o1]);
  const aesK1 = { kind: 'aes' as const, material: k1.material, matdesc: { kek: 'k@1' } };
  await Promise.all(Array.from({ length: 40 }, (_, i) => putEncrypted(s3, a.bucket, `v2/${i}`, randomBytes(100), { placement: 'metadata', wrap: aesK1 })));
  for (let i = 0; i < 3; i++) await putV1(a.bucket, `v1/${i}`, { kek: 'k@1' });

  const aesJ1 = { kind: 'aes' as const, material: j1.material, matdesc: { kek: 'j@1' } };
  await Promise.all(Array.from({ length: 10 }, (_, i) => putEncrypted(s3, b.bucket, `v2/${i}`, randomBytes(100), { placement: 'metadata', wrap: aesJ1 })));
  await putV1(b.bucket, 'v1/names-another-kek', { kek: 'o@1' });
  await putV1(b.bucket, 'v1/names-no-kek', {});
  // A real instruction file (marked) belongs to its object; an object merely named so is an item.
  await putEncrypted(s3, b.bucket, 'with-instruction-file', randomBytes(100), { placement: 'instruction', wrap: aesJ1 });
  await putEncrypted(s3, b.bucket, 'foo.instruction', randomBytes(100), { placement: 'metadata', wrap: aesJ1 });
}, 180_000);

afterAll(async () => {
  await pipe?.stop();
  await a?.cleanup();
  await b?.cleanup();
});

async function rotate(bucket: string, from: string, to: string) {
  const c = await pipe.create({ name: `${from} -> ${to}`, sources: [{ type: 's3', bucket }], provider: { type: 'local', keyringFile }, from, to, options: { batchSize: 20 } });
  return pipe.waitFor(c.id, 'completed', (p) => p.state === 'completed', 120_000).then((p) => ({ id: c.id, p }));
}

describe('kek retire and what rewrap cannot read (invariant 7)', () => {
  it('40 V2 + 3 V1 objects under k@1 rotated to k@2: retire k@1 --grace 1s --delete refuses (exit 3) naming the store, 3 and unsupported-v1, and k@1 stays in the keyring (invariant 7)', async () => {
    const { id, p } = await rotate(a.bucket, 'k@1', 'k@2');
    expect(p).toMatchObject({ planned: 43, rewrapped: 40, skipped: 0, failed: 3 });
    await graceOver(id);

    const r = await retire('k@1', '--grace', '1s', '--delete');
    expect(r.code, JSON.stringify(r.json)).toBe(3);
    expect(r.json.retired).toBe(false);
    expect(r.json.action).toBeNull();
    const store = `s3://${a.bucket}`;
    expect(r.json.failedByReason).toEqual([{ storeId: store, reason: 'unsupported-v1', items: 3 }]);
    expect(r.json.blockers).toContainEqual(expect.stringMatching(new RegExp(`^${store}: 3 item\\(s\\) failed to move and may still be under k@1 \\(3 unsupported-v1;`)));
    // The full pass that --delete needs says the same from the store itself, not `unreadable++`.
    expect(r.json.fullPass).toMatchObject({ mayBeUnderKek: [{ storeId: store, reason: 'unsupported-v1', items: 3 }], underOtherKek: 0 });
    expect(r.json.blockers).toContainEqual(`${store}: 3 item(s) that rewrap cannot read may be under k@1, found re-reading the store (3 unsupported-v1)`);
    expect(r.json.blockers.some((x) => x.startsWith('grace period'))).toBe(false);

    // Nothing irreversible happened: k@1 is still in the keyring, enabled, and the V1 objects are untouched.
    expect(loadKeyringFile(keyringFile).map((e) => `${e.id}@${e.version}:${e.state}`)).toContain('k@1:enabled');
    for (let i = 0; i < 3; i++) expect((await headMeta(s3, a.bucket, `v1/${i}`))['x-amz-matdesc']).toBe('{"kek":"k@1"}');
    // Without --delete (disable), the ledger alone refuses the same way.
    const disable = await retire('k@1', '--grace', '1s');
    expect(disable.code).toBe(3);
    expect(disable.json.failedByReason).toEqual([{ storeId: store, reason: 'unsupported-v1', items: 3 }]);
    expect(loadKeyringFile(keyringFile).map((e) => `${e.id}@${e.version}:${e.state}`)).toContain('k@1:enabled');
  }, 240_000);

  it('an unreadable object whose matdesc names another KEK frees it; one naming no KEK that can be decided blocks; foo.instruction without the marker is rotated (invariant 7)', async () => {
    const { id, p } = await rotate(b.bucket, 'j@1', 'j@2');
    // 10 V2 + 2 V1 + the object with an instruction file + foo.instruction; the instruction file itself is no item.
    expect(p).toMatchObject({ planned: 14, rewrapped: 12, skipped: 0, failed: 2 });
    const underJ2 = { aes: new Map([[matdescKey({ kek: 'j@2' }), j2.material]]) };
    expect((await getDecrypted(s3, b.bucket, 'foo.instruction', underJ2)).payload.length).toBe(100);
    expect((await getDecrypted(s3, b.bucket, 'with-instruction-file', underJ2)).payload.length).toBe(100);
    await graceOver(id);

    const r = await retire('j@1', '--grace', '1s', '--delete');
    expect(r.code, JSON.stringify(r.json)).toBe(3);
    const store = `s3://${b.bucket}`;
    // Only the V1 object whose matdesc names no KEK ({}) blocks; the one naming o@1 is under o@1.
    expect(r.json.failedByReason).toEqual([{ storeId: store, reason: 'unsupported-v1', items: 1 }]);
    expect(r.json.fullPass).toMatchObject({ mayBeUnderKek: [{ storeId: store, reason: 'unsupported-v1', items: 1 }], underOtherKek: 1 });
    expect(loadKeyringFile(keyringFile).map((e) => `${e.id}@${e.version}`)).toContain('j@1');
  }, 240_000);

  it('no key bytes in any process log or CLI output (invariant 5)', () => {
    guard.text(pipe.logs());
    expect(guard.findLeaks()).toEqual([]);
  });
});
