/**
 * S3EnvelopeStore on objects over the multipart threshold (5 MiB here): the in-place rewrite by
 * multipart copy, and the refusal to write where the endpoint honours no precondition for it
 * (Ceph RGW ignores every UploadPartCopy and CompleteMultipartUpload precondition).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  PutObjectTaggingCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { createHash, randomBytes } from 'node:crypto';
import { createS3Client } from '../src/stores/s3-client.ts';
import { S3EnvelopeStore } from '../src/stores/s3-envelope-store.ts';
import { multipartLevel } from '../src/stores/s3-capabilities.ts';
import { withNewKey } from '../src/envelope/s3ec-v2.ts';
import { ItemError } from '../src/core/errors.ts';
import type { ReadResult } from '../src/stores/envelope-store.ts';
import type { Envelope } from '../src/core/envelope.ts';
import { dummyV2Envelope, freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';

const MiB = 1024 * 1024;
let client: S3Client;
let tb: TestBucket;
let guarded: S3EnvelopeStore;
let unconditional: S3EnvelopeStore;

beforeAll(async () => {
  const env = s3TestEnv();
  client = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  tb = await freshBucket(client, 's3-multipart');
  const options = { client, bucket: tb.bucket, multipartThresholdBytes: 5 * MiB, partSizeBytes: 5 * MiB };
  guarded = new S3EnvelopeStore(options);
  unconditional = new S3EnvelopeStore({ ...options, allowUnconditionalWrites: true });
});
afterAll(async () => {
  await tb?.cleanup();
  client?.destroy();
});

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const head = (key: string) => client.send(new HeadObjectCommand({ Bucket: tb.bucket, Key: key }));
const getBytes = async (key: string) => (await client.send(new GetObjectCommand({ Bucket: tb.bucket, Key: key }))).Body!.transformToByteArray();
const openUploads = async () => (await client.send(new ListMultipartUploadsCommand({ Bucket: tb.bucket }))).Uploads ?? [];
const rewrapped = (env: Envelope) => withNewKey(env, randomBytes(60), { kek: 'new' }, { id: 'kek-new', version: '2' });
function envelopeOf(r: ReadResult): { envelope: Envelope; token: unknown } {
  if (r.kind !== 'envelope') throw new Error(`expected an envelope, got ${r.reason}: ${r.detail}`);
  return r;
}
const itemHeaders = (body: Buffer) => ({
  ContentType: 'video/mp4',
  CacheControl: 'no-store',
  Tagging: 'retention=7y',
  Metadata: { ...dummyV2Envelope(body.length - 16), 'app-owner': 'dora' },
});

async function putSinglePart(key: string, body: Buffer) {
  await client.send(new PutObjectCommand({ Bucket: tb.bucket, Key: key, Body: body, ...itemHeaders(body) }));
}

/** Uploaded the way large-file clients do it: 5 MiB + the rest, so its ETag is `<md5>-2`. */
async function putMultipart(key: string, body: Buffer) {
  const up = await client.send(new CreateMultipartUploadCommand({ Bucket: tb.bucket, Key: key, ...itemHeaders(body) }));
  const parts = [];
  for (const [i, start] of [0, 5 * MiB].entries()) {
    const slice = body.subarray(start, i === 0 ? 5 * MiB : body.length);
    const out = await client.send(new UploadPartCommand({ Bucket: tb.bucket, Key: key, UploadId: up.UploadId, PartNumber: i + 1, Body: slice }));
    parts.push({ PartNumber: i + 1, ETag: out.ETag });
  }
  await client.send(new CompleteMultipartUploadCommand({ Bucket: tb.bucket, Key: key, UploadId: up.UploadId, MultipartUpload: { Parts: parts } }));
  // RGW ignores Tagging on CreateMultipartUpload: tag it the way that works everywhere.
  await client.send(new PutObjectTaggingCommand({ Bucket: tb.bucket, Key: key, Tagging: { TagSet: [{ Key: 'retention', Value: '7y' }] } }));
}

async function expectRewrittenInPlace(key: string, body: Buffer, store: S3EnvelopeStore) {
  const { envelope, token } = envelopeOf(await store.read({ key }));
  const next = rewrapped(envelope);
  expect(await store.writeIfUnchanged({ key }, token, next)).toBe('written');

  expect(sha(await getBytes(key))).toBe(sha(body));
  const after = await head(key);
  expect(after.ContentLength).toBe(body.length);
  expect(after.ContentType).toBe('video/mp4');
  expect(after.CacheControl).toBe('no-store');
  expect(after.Metadata?.['app-owner']).toBe('dora');
  const tags = await client.send(new GetObjectTaggingCommand({ Bucket: tb.bucket, Key: key }));
  expect(tags.TagSet).toEqual([{ Key: 'retention', Value: '7y' }]);
  const reread = envelopeOf(await store.read({ key })).envelope;
  expect(reread.dek.wrapped.equals(next.dek.wrapped)).toBe(true);
  expect(reread.stamp).toMatchObject({ id: 'kek-new' });
  expect(reread.fields).toEqual(envelope.fields);
  expect(await openUploads()).toEqual([]);
}

describe('S3EnvelopeStore, objects over the multipart threshold', () => {
  it('where the endpoint honours no multipart precondition: casLevel is none and the write is refused, nothing written', async (ctx) => {
    if (multipartLevel(await guarded.capabilities()) !== 'none') ctx.skip(); // e.g. AWS: Complete If-Match
    const key = 'big/refused.bin';
    const body = randomBytes(6 * MiB);
    await putSinglePart(key, body);
    const before = await head(key);
    expect(await guarded.casLevel({ key })).toBe('none');

    const { envelope, token } = envelopeOf(await guarded.read({ key }));
    const err = await guarded.writeIfUnchanged({ key }, token, rewrapped(envelope)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ItemError);
    expect(err).toMatchObject({ reason: 'unconditional-write-refused', transient: false });
    expect((err as Error).message).toContain(`s3://${tb.bucket}/${key}`);

    const after = await head(key);
    expect(after.ETag).toBe(before.ETag);
    expect(after.Metadata).toEqual(before.Metadata);
    expect(after.LastModified).toEqual(before.LastModified);
    expect(await openUploads()).toEqual([]);
  });

  it('a 6 MiB single-part object is rewritten in place: bytes, headers, tags and other metadata unchanged', async () => {
    const key = 'big/single-part.bin';
    const body = randomBytes(6 * MiB);
    await putSinglePart(key, body);
    await expectRewrittenInPlace(key, body, unconditional);
  });

  it('an object that was itself uploaded multipart is rewritten in place', async () => {
    const key = 'big/multipart-upload.bin';
    const body = randomBytes(6 * MiB + 123);
    await putMultipart(key, body);
    expect((await head(key)).ETag).toMatch(/-2"?$/);
    await expectRewrittenInPlace(key, body, unconditional);
  });

  it('a content overwrite between read and write -> conflict, the upload is aborted and the application write survives', async () => {
    const key = 'big/race.bin';
    await putSinglePart(key, randomBytes(6 * MiB));
    const { envelope, token } = envelopeOf(await unconditional.read({ key }));
    const appBody = randomBytes(6 * MiB);
    await putSinglePart(key, appBody);
    const appHead = await head(key);

    expect(await unconditional.writeIfUnchanged({ key }, token, rewrapped(envelope))).toBe('conflict');
    expect(sha(await getBytes(key))).toBe(sha(appBody));
    expect((await head(key)).Metadata).toEqual(appHead.Metadata);
    expect(await openUploads()).toEqual([]);
  });
});
