/**
 * S3 store writes, request by request, against the real S3 server (Ceph RGW) through a TCP proxy
 * that sees every request line (test/support/tap-proxy.ts):
 * - the fence runs as each write request leaves, not once before the write call (invariant 8);
 * - a write is sent once: no SDK retry of a write whose connection broke;
 * - tags are put back only when the copy dropped them all, never over someone else's change;
 * - a failure after the envelope write landed is that item's outcome, not a batch error.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { GetObjectTaggingCommand, HeadObjectCommand, ListMultipartUploadsCommand, PutObjectTaggingCommand, type S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { createS3Client } from '../src/stores/s3-client.ts';
import { S3EnvelopeStore } from '../src/stores/s3-envelope-store.ts';
import { WriteFencedError, type ReadResult } from '../src/stores/envelope-store.ts';
import { withNewKey } from '../src/envelope/s3ec-v2.ts';
import { ItemError } from '../src/core/errors.ts';
import { LocalKeyringProvider } from '../src/kek/local-keyring-provider.ts';
import { parseKeyring } from '../src/kek/keyring-file.ts';
import { rewrapItem } from '../src/rewrap/rewrap-item.ts';
import { getDecrypted, matdescKey, putEncrypted } from '../dev/reference/s3ec-client.ts';
import { freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';
import { startTapProxy, type RequestHook, type TapProxy } from './support/tap-proxy.ts';

let direct: S3Client;
let viaProxy: S3Client;
let proxy: TapProxy;
let tb: TestBucket;
let store: S3EnvelopeStore;
/** The hook of the current test; every request line the proxy saw, in order. */
let hook: RequestHook = () => undefined;
let seen: string[] = [];
const k1 = randomBytes(32);
const k2 = randomBytes(32);
const provider = new LocalKeyringProvider(
  parseKeyring({ keks: [{ id: 'k', version: '1', material: k1.toString('base64') }, { id: 'k', version: '2', material: k2.toString('base64') }] }),
);

beforeAll(async () => {
  const env = s3TestEnv();
  direct = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  proxy = await startTapProxy(env.endpoint, (method, target) => {
    seen.push(`${method} ${target}`);
    return hook(method, target);
  });
  viaProxy = createS3Client({ endpoint: proxy.url, region: env.region, credentials: env });
  tb = await freshBucket(direct, 's3-write-fence');
  store = new S3EnvelopeStore({ client: viaProxy, bucket: tb.bucket, placement: 'metadata' });
  await store.capabilities(); // probed once, outside the requests each test counts
});
beforeEach(() => {
  hook = () => undefined;
  seen = [];
});
afterAll(async () => {
  await tb?.cleanup();
  viaProxy?.destroy();
  direct?.destroy();
  await proxy?.close();
});

let n = 0;
async function item(tags: Record<string, string> = {}, size = 200): Promise<{ key: string; payload: Buffer }> {
  const key = `w/${++n}`;
  const payload = randomBytes(size);
  await putEncrypted(direct, tb.bucket, key, payload, { placement: 'metadata', wrap: { kind: 'aes', material: k1, matdesc: { kek: 'k@1' } } });
  const TagSet = Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
  if (TagSet.length) await direct.send(new PutObjectTaggingCommand({ Bucket: tb.bucket, Key: key, Tagging: { TagSet } }));
  return { key, payload };
}

const tagsOf = async (key: string) =>
  Object.fromEntries(((await direct.send(new GetObjectTaggingCommand({ Bucket: tb.bucket, Key: key }))).TagSet ?? []).map((t) => [t.Key, t.Value]));
const etagOf = async (key: string) => (await direct.send(new HeadObjectCommand({ Bucket: tb.bucket, Key: key }))).ETag;
const under = async (key: string, payload: Buffer, kek: 'k@1' | 'k@2') => {
  const d = await getDecrypted(direct, tb.bucket, key, { aes: new Map([[matdescKey({ kek }), kek === 'k@1' ? k1 : k2]]) }).catch(() => undefined);
  return d?.payload.equals(payload) ?? false;
};
const isCopy = (key: string) => (line: string) => line === `PUT /${tb.bucket}/${key}?x-id=CopyObject` || line === `PUT /${tb.bucket}/${key}`;

async function readAndRewrap(key: string, from = store) {
  const r: ReadResult = await from.read({ key });
  if (r.kind !== 'envelope') throw new Error(`${key}: ${r.reason} ${r.detail}`);
  const out = await provider.rewrap(r.envelope.dek, { id: 'k', version: '1' }, { id: 'k', version: '2' });
  return { token: r.token, next: withNewKey(r.envelope, out.wrapped, out.matdesc, out.to) };
}

describe('the fence stands at the write request (invariant 8)', () => {
  it('a lease that runs out during the tagging round trip stops the CopyObject: the fence is asked as the copy leaves, nothing is written', async () => {
    const { key, payload } = await item({ team: 'a' });
    const { token, next } = await readAndRewrap(key);
    let leaseValid = true;
    const fence = () => {
      if (!leaseValid) throw new WriteFencedError('lease may have expired; not writing');
    };
    // The lease runs out while the store snapshots the tags (the first request of its write).
    hook = (method, target) => {
      if (method === 'GET' && target.includes('?tagging')) leaseValid = false;
    };
    const err = await store.writeIfUnchanged({ key }, token, next, undefined, fence).catch((e: unknown) => e);
    expect(seen.filter(isCopy(key))).toEqual([]);
    expect(err).toBeInstanceOf(WriteFencedError);
    expect(await under(key, payload, 'k@1')).toBe(true);
    expect(await tagsOf(key)).toEqual({ team: 'a' });
  });

  it('a lease that runs out during the part copies of a multipart rewrite stops CompleteMultipartUpload: the upload is aborted, the object unchanged', async () => {
    const MiB = 1024 * 1024;
    const big = new S3EnvelopeStore({ client: viaProxy, bucket: tb.bucket, placement: 'metadata', multipartThresholdBytes: 5 * MiB, partSizeBytes: 5 * MiB, allowUnconditionalWrites: true });
    const { key, payload } = await item({}, 6 * MiB);
    const etagBefore = await etagOf(key);
    const { token, next } = await readAndRewrap(key, big);
    let leaseValid = true;
    hook = (method, target) => {
      if (method === 'PUT' && target.startsWith(`/${tb.bucket}/${key}?`) && target.includes('uploadId=')) leaseValid = false; // a part copy
    };
    const err = await big
      .writeIfUnchanged({ key }, token, next, undefined, () => {
        if (!leaseValid) throw new WriteFencedError('lease may have expired; not writing');
      })
      .catch((e: unknown) => e);
    const completes = seen.filter((l) => l.startsWith(`POST /${tb.bucket}/${key}?uploadId=`));
    expect(completes).toEqual([]);
    expect(err).toBeInstanceOf(WriteFencedError);
    expect(await etagOf(key)).toBe(etagBefore);
    expect(await under(key, payload, 'k@1')).toBe(true);
    const open = await direct.send(new ListMultipartUploadsCommand({ Bucket: tb.bucket, Prefix: key }));
    expect(open.Uploads ?? []).toEqual([]);
  });

  it('a write is sent once: a copy whose connection broke is not re-sent by the SDK, it is a transient item failure (the pipeline re-reads)', async () => {
    const { key, payload } = await item();
    const { token, next } = await readAndRewrap(key);
    hook = (method, target) => (method === 'PUT' && isCopy(key)(`${method} ${target}`) ? 'drop' : undefined);
    const err = await store.writeIfUnchanged({ key }, token, next).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ItemError);
    expect((err as ItemError).reason).toBe('store-unavailable');
    expect((err as ItemError).transient).toBe(true);
    expect(seen.filter(isCopy(key))).toHaveLength(1);
    expect(await under(key, payload, 'k@1')).toBe(true);
  });
});

describe('tags across the self-copy', () => {
  it('tags someone else set after our copy are kept: the snapshot is put back only when the object has no tags at all', async () => {
    const { key, payload } = await item({ team: 'a' });
    const { token, next } = await readAndRewrap(key);
    let tagReads = 0;
    hook = async (method, target) => {
      // The second tag read is the store's check after its copy: someone retags just before it.
      if (method === 'GET' && target.includes(`/${key}?tagging`) && ++tagReads === 2) {
        await direct.send(new PutObjectTaggingCommand({ Bucket: tb.bucket, Key: key, Tagging: { TagSet: [{ Key: 'team', Value: 'b' }] } }));
      }
    };
    expect(await store.writeIfUnchanged({ key }, token, next)).toBe('written');
    expect(tagReads).toBe(2);
    expect(await tagsOf(key)).toEqual({ team: 'b' });
    expect(await under(key, payload, 'k@2')).toBe(true);
  });

  it('tags the copy dropped are put back', async () => {
    const { key } = await item({ team: 'a', tier: 'gold' });
    const { token, next } = await readAndRewrap(key);
    expect(await store.writeIfUnchanged({ key }, token, next)).toBe('written');
    expect(await tagsOf(key)).toEqual({ team: 'a', tier: 'gold' });
  });

  it('an object without tags: no tag request at all, and none appear', async () => {
    const { key } = await item();
    const { token, next } = await readAndRewrap(key);
    expect(await store.writeIfUnchanged({ key }, token, next)).toBe('written');
    expect(seen.filter((l) => l.includes('?tagging'))).toEqual([]);
    expect(await tagsOf(key)).toEqual({});
  });

  it('putting the tags back fails after the copy landed: the item is rewrapped, with the problem in its outcome, not a batch error', async () => {
    const { key, payload } = await item({ team: 'a' });
    const etagBefore = await etagOf(key);
    hook = (method, target) => (method === 'PUT' && target.startsWith(`/${tb.bucket}/${key}?tagging`) ? 'drop' : undefined);
    const outcome = await rewrapItem({ store, provider, from: { id: 'k', version: '1' }, to: { id: 'k', version: '2' } }, { key });
    expect(outcome).toMatchObject({ status: 'rewrapped', key, to: { id: 'k', version: '2' } });
    expect(outcome.status === 'rewrapped' && outcome.problem).toMatch(/the envelope was rewritten, but the self-copy dropped the object's tags .*team=a/);
    expect(seen.filter((l) => l.startsWith(`PUT /${tb.bucket}/${key}?tagging`))).toHaveLength(1); // sent once
    expect(await under(key, payload, 'k@2')).toBe(true);
    expect(await etagOf(key)).toBe(etagBefore);
  });
});
