/**
 * S3EnvelopeStore against a real S3 server (Ceph RGW from the global setup): both placements
 * read and write back, a concurrent write is refused, and nothing else about an object changes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { createHash, randomBytes } from 'node:crypto';
import { createS3Client, normalizeEtag } from '../src/stores/s3-client.ts';
import { S3EnvelopeStore } from '../src/stores/s3-envelope-store.ts';
import { withNewKey } from '../src/envelope/s3ec-v2.ts';
import { ItemError } from '../src/core/errors.ts';
import type { ReadResult } from '../src/stores/envelope-store.ts';
import type { Envelope } from '../src/core/envelope.ts';
import { dummyV2Envelope, freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';

let client: S3Client;
let tb: TestBucket;
let store: S3EnvelopeStore;
const NEW_KEK = { id: 'kek-new', version: '2' };

beforeAll(async () => {
  const env = s3TestEnv();
  client = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  tb = await freshBucket(client, 's3-store');
  store = new S3EnvelopeStore({ client, bucket: tb.bucket });
});
afterAll(async () => {
  await tb?.cleanup();
  client?.destroy();
});

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
let n = 0;
const uniqueKey = (label: string) => `items/${label}-${++n} with space+plus`;

async function getBytes(key: string): Promise<Uint8Array> {
  const out = await client.send(new GetObjectCommand({ Bucket: tb.bucket, Key: key }));
  return out.Body!.transformToByteArray();
}
const head = (key: string) => client.send(new HeadObjectCommand({ Bucket: tb.bucket, Key: key }));

/** An object as an S3EC V2 client writes it with the envelope in its metadata. */
async function putMetadataItem(key: string, body: Buffer, extra: Record<string, string> = {}) {
  await client.send(
    new PutObjectCommand({
      Bucket: tb.bucket,
      Key: key,
      Body: body,
      ContentType: 'application/x-test',
      CacheControl: 'max-age=60',
      ContentDisposition: 'attachment; filename="a.bin"',
      Tagging: 'team=storage&tier=gold',
      Metadata: { ...dummyV2Envelope(body.length - 16), 'app-owner': 'alice', 'app-note': 'keep me', ...extra },
    }),
  );
}

/** An object as an S3EC V2 client writes it in instruction-file mode. */
async function putInstructionItem(key: string, body: Buffer, json: Record<string, unknown> = dummyV2Envelope(body.length - 16)) {
  await client.send(new PutObjectCommand({ Bucket: tb.bucket, Key: key, Body: body, ContentType: 'image/png', Metadata: { 'app-owner': 'bob' } }));
  await client.send(
    new PutObjectCommand({
      Bucket: tb.bucket,
      Key: `${key}.instruction`,
      Body: JSON.stringify(json),
      ContentType: 'application/json',
      Metadata: { 'x-amz-crypto-instr-file': '' },
    }),
  );
}

function envelopeOf(r: ReadResult): { envelope: Envelope; token: unknown } {
  if (r.kind !== 'envelope') throw new Error(`expected an envelope, got ${r.reason}: ${r.detail}`);
  return r;
}
const rewrapped = (env: Envelope) => withNewKey(env, randomBytes(60), { kek: 'new' }, NEW_KEK);

describe('S3EnvelopeStore, envelope in the object metadata', () => {
  it('rewrites only the envelope: payload bytes, Content-Type, headers, tags and other metadata are unchanged', async () => {
    const key = uniqueKey('meta');
    const body = randomBytes(4096);
    await putMetadataItem(key, body);
    const before = await head(key);

    const { envelope, token } = envelopeOf(await store.read({ key }));
    const next = rewrapped(envelope);
    expect(await store.writeIfUnchanged({ key }, token, next)).toBe('written');

    expect(sha(await getBytes(key))).toBe(sha(body));
    const after = await head(key);
    expect(after.ContentType).toBe('application/x-test');
    expect(after.CacheControl).toBe('max-age=60');
    expect(after.ContentDisposition).toBe('attachment; filename="a.bin"');
    expect(after.Metadata?.['app-owner']).toBe('alice');
    expect(after.Metadata?.['app-note']).toBe('keep me');
    const tags = await client.send(new GetObjectTaggingCommand({ Bucket: tb.bucket, Key: key }));
    expect(Object.fromEntries((tags.TagSet ?? []).map((t) => [t.Key, t.Value]))).toEqual({ team: 'storage', tier: 'gold' });
    // Only the envelope keys changed (plus the new stamp key).
    const changed = Object.keys(after.Metadata!).filter((k) => after.Metadata![k] !== before.Metadata![k]).sort();
    expect(changed).toEqual(['x-amz-key-v2', 'x-amz-matdesc', 'x-rewrap-kek']);

    const reread = envelopeOf(await store.read({ key })).envelope;
    expect(reread.dek.wrapped.equals(next.dek.wrapped)).toBe(true);
    expect(reread.dek.matdesc).toEqual({ kek: 'new' });
    expect(reread.stamp).toMatchObject({ id: 'kek-new', version: '2' });
    expect(reread.fields).toEqual(envelope.fields);
  });

  it('a content overwrite between read and write -> conflict, and the application write survives', async () => {
    const key = uniqueKey('meta-race');
    await putMetadataItem(key, randomBytes(1024));
    const { envelope, token } = envelopeOf(await store.read({ key }));

    const appBody = randomBytes(2048);
    await putMetadataItem(key, appBody, { 'app-note': 'written by the app' });
    const appHead = await head(key);

    expect(await store.writeIfUnchanged({ key }, token, rewrapped(envelope))).toBe('conflict');
    expect(sha(await getBytes(key))).toBe(sha(appBody));
    expect((await head(key)).Metadata).toEqual(appHead.Metadata);
  });

  it('an object deleted between read and write -> conflict, and nothing is recreated', async () => {
    const key = uniqueKey('meta-gone');
    await putMetadataItem(key, randomBytes(100));
    const { envelope, token } = envelopeOf(await store.read({ key }));
    await client.send(new DeleteObjectCommand({ Bucket: tb.bucket, Key: key }));

    expect(await store.writeIfUnchanged({ key }, token, rewrapped(envelope))).toBe('conflict');
    await expect(head(key)).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } });
    expect(await store.read({ key })).toMatchObject({ kind: 'invalid', reason: 'item-missing' });
  });

  it("casLevel is 'content': the ETag check cannot tell two rewraps apart (both writes land, the last one wins)", async () => {
    const key = uniqueKey('meta-level');
    await putMetadataItem(key, randomBytes(100));
    expect(await store.casLevel({ key })).toBe('content');
    // What 'content' means, shown rather than claimed: a metadata-only copy keeps the ETag.
    const first = envelopeOf(await store.read({ key }));
    const second = envelopeOf(await store.read({ key }));
    expect(await store.writeIfUnchanged({ key }, first.token, rewrapped(first.envelope))).toBe('written');
    const last = rewrapped(second.envelope);
    expect(await store.writeIfUnchanged({ key }, second.token, last)).toBe('written');
    expect(envelopeOf(await store.read({ key })).envelope.dek.wrapped.equals(last.dek.wrapped)).toBe(true);
  });
});

describe('S3EnvelopeStore, envelope in an instruction file', () => {
  it('rewrites only the instruction file: the object, the marker, its content type and extra JSON keys are unchanged', async () => {
    const key = uniqueKey('instr');
    const body = randomBytes(3000);
    await putInstructionItem(key, body, { ...dummyV2Envelope(body.length - 16), 'x-app-extra': 'kept' });
    const objectBefore = await head(key);

    const read = await store.read({ key });
    const { envelope, token } = envelopeOf(read);
    // The marked file as read, by its ETag (the delta pass's check of the name is then free).
    expect(read.kind === 'envelope' && read.envelopeFile).toEqual({ etag: normalizeEtag((await head(`${key}.instruction`)).ETag) });
    const next = rewrapped(envelope);
    const written = await store.writeIfUnchanged({ key }, token, next);

    const objectAfter = await head(key);
    expect(objectAfter.ETag).toBe(objectBefore.ETag);
    expect(objectAfter.LastModified).toEqual(objectBefore.LastModified);
    expect(objectAfter.ContentType).toBe('image/png');
    expect(objectAfter.Metadata).toEqual({ 'app-owner': 'bob' });
    expect(sha(await getBytes(key))).toBe(sha(body));

    const instr = await head(`${key}.instruction`);
    expect(written).toEqual({ written: { etag: normalizeEtag(instr.ETag) } });
    expect(instr.ContentType).toBe('application/json');
    expect(instr.Metadata).toHaveProperty('x-amz-crypto-instr-file');
    const json = JSON.parse(Buffer.from(await getBytes(`${key}.instruction`)).toString('utf8'));
    expect(json['x-app-extra']).toBe('kept');
    expect(json['x-amz-key-v2']).toBe(next.dek.wrapped.toString('base64'));

    const reread = envelopeOf(await store.read({ key })).envelope;
    expect(reread.dek.wrapped.equals(next.dek.wrapped)).toBe(true);
    expect(reread.stamp).toMatchObject({ id: 'kek-new', version: '2' });
    expect(reread.fields).toEqual(envelope.fields);
  });

  it('an application overwrite (object and instruction file) between read and write -> conflict, and the application write survives', async () => {
    const key = uniqueKey('instr-race');
    await putInstructionItem(key, randomBytes(500));
    const { envelope, token } = envelopeOf(await store.read({ key }));

    const appBody = randomBytes(700);
    const appEnvelope = dummyV2Envelope(684, { kek: 'app' });
    await putInstructionItem(key, appBody, appEnvelope);

    expect(await store.writeIfUnchanged({ key }, token, rewrapped(envelope))).toBe('conflict');
    expect(sha(await getBytes(key))).toBe(sha(appBody));
    expect(JSON.parse(Buffer.from(await getBytes(`${key}.instruction`)).toString('utf8'))).toEqual(appEnvelope);
  });

  it('an instruction file rewritten between read and write (a concurrent rewrap) -> conflict', async () => {
    const key = uniqueKey('instr-twice');
    await putInstructionItem(key, randomBytes(500));
    const first = envelopeOf(await store.read({ key }));
    const second = envelopeOf(await store.read({ key }));

    const winner = rewrapped(first.envelope);
    expect(await store.writeIfUnchanged({ key }, first.token, winner)).toMatchObject({ written: { etag: expect.any(String) } });
    expect(await store.writeIfUnchanged({ key }, second.token, rewrapped(second.envelope))).toBe('conflict');
    expect(envelopeOf(await store.read({ key })).envelope.dek.wrapped.equals(winner.dek.wrapped)).toBe(true);
  });

  it("casLevel is 'envelope': the instruction file's ETag changes with every rewrap", async () => {
    const key = uniqueKey('instr-level');
    await putInstructionItem(key, randomBytes(100));
    expect(await store.casLevel({ key })).toBe('envelope');
  });
});

describe('S3EnvelopeStore.read classifies what it cannot rewrap', () => {
  const put = (key: string, body: string, metadata: Record<string, string> = {}) =>
    client.send(new PutObjectCommand({ Bucket: tb.bucket, Key: key, Body: body, Metadata: metadata }));

  it('missing object -> item-missing; plain object -> not-encrypted', async () => {
    expect(await store.read({ key: uniqueKey('never-written') })).toMatchObject({ kind: 'invalid', reason: 'item-missing' });
    const plain = uniqueKey('plain');
    await put(plain, 'hello', { 'app-owner': 'carol' });
    expect(await store.read({ key: plain })).toMatchObject({ kind: 'invalid', reason: 'not-encrypted' });
  });

  it('encryption hints but no instruction file -> instruction-file-missing; with placement "instruction" even without hints', async () => {
    const hinted = uniqueKey('hinted');
    await put(hinted, 'x', { 'x-amz-cek-alg': 'AES/GCM/NoPadding', 'x-amz-iv': randomBytes(12).toString('base64') });
    expect(await store.read({ key: hinted })).toMatchObject({ kind: 'invalid', reason: 'instruction-file-missing' });
    const bare = uniqueKey('bare');
    await put(bare, 'x');
    const instructionStore = new S3EnvelopeStore({ client, bucket: tb.bucket, placement: 'instruction' });
    expect(await instructionStore.read({ key: bare })).toMatchObject({ kind: 'invalid', reason: 'instruction-file-missing' });
    const metadataStore = new S3EnvelopeStore({ client, bucket: tb.bucket, placement: 'metadata' });
    expect(await metadataStore.read({ key: hinted })).toMatchObject({ kind: 'invalid', reason: 'not-encrypted' });
  });

  it.each([
    ['not JSON', 'x-amz-key-v2: abc'],
    ['a JSON array', '["x-amz-key-v2"]'],
    ['values that are not strings', JSON.stringify({ ...dummyV2Envelope(1), 'x-amz-tag-len': 128 })],
    ['no envelope keys', JSON.stringify({ hello: 'world' })],
  ])('instruction file that is %s -> instruction-file-malformed', async (_label, text) => {
    const key = uniqueKey('bad-instr');
    await put(key, 'x');
    await put(`${key}.instruction`, text, { 'x-amz-crypto-instr-file': '' });
    expect(await store.read({ key })).toMatchObject({ kind: 'invalid', reason: 'instruction-file-malformed' });
  });

  it('S3EC V1 metadata -> unsupported-v1; the instruction file itself is not an item', async () => {
    const v1 = uniqueKey('v1');
    await put(v1, 'x', { 'x-amz-key': randomBytes(48).toString('base64'), 'x-amz-iv': randomBytes(16).toString('base64') });
    expect(await store.read({ key: v1 })).toMatchObject({ kind: 'invalid', reason: 'unsupported-v1' });
    const key = uniqueKey('owner');
    await putInstructionItem(key, randomBytes(100));
    const r = await store.read({ key: `${key}.instruction` });
    expect(r).toMatchObject({ kind: 'invalid', reason: 'not-encrypted' });
    expect(r.kind === 'invalid' && r.detail).toContain('is an instruction file');
  });
});

describe('S3EnvelopeStore failures', () => {
  it('an unreachable endpoint is a transient store-unavailable ItemError naming the item', async () => {
    const dead = createS3Client({ endpoint: 'http://127.0.0.1:9', region: 'us-east-1', credentials: s3TestEnv(), maxAttempts: 1 });
    try {
      const err = await new S3EnvelopeStore({ client: dead, bucket: tb.bucket }).read({ key: 'items/x' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ItemError);
      expect(err).toMatchObject({ reason: 'store-unavailable', transient: true });
      expect((err as Error).message).toContain(`s3://${tb.bucket}/items/x`);
    } finally {
      dead.destroy();
    }
  });

  it('an aborted signal stops the request', async () => {
    const key = uniqueKey('abort');
    await putMetadataItem(key, randomBytes(10));
    await expect(store.read({ key }, AbortSignal.abort())).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('a token that store.read did not return is refused before any write', async () => {
    const key = uniqueKey('foreign-token');
    await putMetadataItem(key, randomBytes(10));
    const { envelope } = envelopeOf(await store.read({ key }));
    await expect(store.writeIfUnchanged({ key }, { etag: 'x' }, envelope)).rejects.toThrow(/not returned by S3EnvelopeStore.read/);
  });
});
