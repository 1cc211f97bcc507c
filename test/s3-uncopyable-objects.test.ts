/**
 * Objects a self-copy cannot rewrite (issue 14, point 3), against the real S3 server (Ceph RGW
 * 16 from scripts/rgw/start.sh, which has a GLACIER storage class, SSE-C over plain HTTP and a
 * testing SSE-KMS key): each fails with its own permanent reason code, keeps counting under its
 * KEK (invariant 7), and is not modified: same ETag, metadata, LastModified, and no new version
 * in a versioned bucket.
 *
 * What RGW cannot produce, and how it is covered instead:
 * - Intelligent-Tiering archive tiers (`x-amz-archive-status`) and AWS's InvalidObjectState 403:
 *   the classifier is given a real RGW HEAD answer with the field set, and the SDK's own
 *   InvalidObjectState exception.
 * - a 403 from a requester-pays bucket: RGW's test user owns the bucket and owners are never
 *   refused. A forwarding proxy answers as AWS does for a bucket you do not own (HEAD without
 *   `x-amz-request-payer`: 403, no body) and passes every other request to RGW unchanged.
 * - SSE-S3: RGW 16 ignores `x-amz-server-side-encryption: AES256` (HEAD reports none).
 * - SSE-KMS on the self-copy: RGW 16 answers 501 NotImplemented to any copy of an SSE-KMS
 *   object; the test checks what the copy request carries, that the 501 is a permanent failure
 *   (not retried forever as a server error) and that nothing changed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GetObjectCommand,
  HeadObjectCommand,
  InvalidObjectState,
  ListObjectVersionsCommand,
  PutBucketRequestPaymentCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  type PutObjectCommandInput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { createHash, randomBytes } from 'node:crypto';
import { createS3Client } from '../src/stores/s3-client.ts';
import { S3EnvelopeStore } from '../src/stores/s3-envelope-store.ts';
import { uncopyableFromHead } from '../src/stores/s3-uncopyable.ts';
import { toItemFailure } from '../src/stores/s3-errors.ts';
import { ItemError } from '../src/core/errors.ts';
import { LocalKeyringProvider } from '../src/kek/local-keyring-provider.ts';
import { parseKeyring } from '../src/kek/keyring-file.ts';
import { rewrapItem } from '../src/rewrap/rewrap-item.ts';
import { UNDER_NO_KEK_REASONS, isTransient } from '../src/core/reasons.ts';
import { putEncrypted } from '../dev/reference/s3ec-client.ts';
import { parseCampaignSpec } from '../src/campaign/spec.ts';
import { freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';
import { requesterPaysFront } from './support/requester-pays-front.ts';

let client: S3Client;
let tb: TestBucket;
let store: S3EnvelopeStore;
/** Every request the store's client sent: method, path and headers, as signed. */
let sent: { method: string; path: string; headers: Record<string, string> }[] = [];
const k1 = randomBytes(32);
const k2 = randomBytes(32);
const provider = new LocalKeyringProvider(
  parseKeyring({ keks: [{ id: 'k', version: '1', material: k1.toString('base64') }, { id: 'k', version: '2', material: k2.toString('base64') }] }),
);
const target = () => ({ store, provider, from: { id: 'k', version: '1' }, to: { id: 'k', version: '2' } });

const ssecKey = randomBytes(32);
const SSEC = {
  SSECustomerAlgorithm: 'AES256',
  SSECustomerKey: ssecKey.toString('base64'),
  SSECustomerKeyMD5: createHash('md5').update(ssecKey).digest('base64'),
};

/** A client whose every request is recorded after signing (a real request to the server). */
function recordingClient(): S3Client {
  const env = s3TestEnv();
  const c = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  c.middlewareStack.add(
    ((next: (a: { request: unknown }) => Promise<unknown>) => async (args: { request: unknown }) => {
      const r = args.request as { method: string; path: string; headers: Record<string, string> };
      sent.push({ method: r.method, path: r.path, headers: { ...r.headers } });
      return next(args);
    }) as never,
    { step: 'finalizeRequest', name: 'testRecordRequests', priority: 'low' },
  );
  return c;
}

beforeAll(async () => {
  const env = s3TestEnv();
  client = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  tb = await freshBucket(client, 's3-uncopyable');
  await client.send(new PutBucketVersioningCommand({ Bucket: tb.bucket, VersioningConfiguration: { Status: 'Enabled' } }));
  store = new S3EnvelopeStore({ client: recordingClient(), bucket: tb.bucket, placement: 'metadata' });
});
afterAll(async () => {
  await tb?.cleanup();
  client?.destroy();
});

let n = 0;
/** An S3EC V2 object under k@1, written again with `extra` (storage class, server-side encryption). */
async function item(extra: Partial<PutObjectCommandInput>): Promise<string> {
  const key = `u/${++n}`;
  const staging = `staging/${n}`;
  await putEncrypted(client, tb.bucket, staging, randomBytes(100), { placement: 'metadata', wrap: { kind: 'aes', material: k1, matdesc: { kek: 'k@1' } } });
  const h = await client.send(new HeadObjectCommand({ Bucket: tb.bucket, Key: staging }));
  const body = await (await client.send(new GetObjectCommand({ Bucket: tb.bucket, Key: staging }))).Body!.transformToByteArray();
  await client.send(new PutObjectCommand({ Bucket: tb.bucket, Key: key, Body: body, Metadata: h.Metadata, ContentType: h.ContentType, ...extra }));
  return key;
}

/** What must not change: ETag, user metadata, LastModified, storage class, encryption, versions. */
async function snapshot(key: string, headExtra: Record<string, string> = {}) {
  const h = await client.send(new HeadObjectCommand({ Bucket: tb.bucket, Key: key, ...headExtra }));
  const versions = await client.send(new ListObjectVersionsCommand({ Bucket: tb.bucket, Prefix: key }));
  return {
    etag: h.ETag,
    metadata: h.Metadata,
    lastModified: h.LastModified?.toISOString(),
    storageClass: h.StorageClass,
    sse: h.ServerSideEncryption,
    kmsKey: h.SSEKMSKeyId,
    ssec: h.SSECustomerAlgorithm,
    versions: (versions.Versions ?? []).filter((v) => v.Key === key).map((v) => v.VersionId),
  };
}

describe('objects a self-copy cannot rewrite get their own reason and are not modified (issue 14.3, invariant 7)', () => {
  it('an object in storage class GLACIER is archived-storage-class, still counted under its KEK, untouched', async () => {
    const key = await item({ StorageClass: 'GLACIER' });
    const before = await snapshot(key);
    expect(before.storageClass).toBe('GLACIER'); // RGW reports the zonegroup's storage class as AWS would
    sent = [];
    const out = await rewrapItem(target(), { key });
    expect(out).toMatchObject({ status: 'failed', reason: 'archived-storage-class', current: { id: 'k', version: '1' } });
    expect(sent.filter((r) => r.method !== 'HEAD' && r.method !== 'GET')).toEqual([]); // nothing written
    expect(await snapshot(key)).toEqual(before);
  });

  it('an SSE-C object (HEAD refused without its key) is sse-c-object, untouched', async () => {
    const key = await item(SSEC);
    const before = await snapshot(key, SSEC);
    expect(before.ssec).toBe('AES256');
    sent = [];
    const out = await rewrapItem(target(), { key });
    expect(out).toMatchObject({ status: 'failed', reason: 'sse-c-object' });
    expect(sent.filter((r) => r.method !== 'HEAD' && r.method !== 'GET')).toEqual([]);
    expect(await snapshot(key, SSEC)).toEqual(before);
  });

  it('the new reasons are permanent and never free the item from its KEK (invariant 7)', () => {
    for (const reason of ['archived-storage-class', 'sse-c-object', 'requester-pays'] as const) {
      expect(isTransient(reason)).toBe(false);
      expect(UNDER_NO_KEK_REASONS).not.toContain(reason);
    }
  });

  it('what RGW cannot produce is classified from a real HEAD answer and the SDK error: DEEP_ARCHIVE, Intelligent-Tiering archive, SSE-C shown, InvalidObjectState', async () => {
    const key = await item({});
    const real = await client.send(new HeadObjectCommand({ Bucket: tb.bucket, Key: key }));
    expect(uncopyableFromHead(real, key)).toBeUndefined();
    expect(uncopyableFromHead({ ...real, StorageClass: 'STANDARD_IA' }, key)).toBeUndefined();
    expect(uncopyableFromHead({ ...real, StorageClass: 'GLACIER_IR' }, key)).toBeUndefined(); // readable at once: copied
    expect(uncopyableFromHead({ ...real, StorageClass: 'DEEP_ARCHIVE' }, key)).toMatchObject({ reason: 'archived-storage-class', kekReference: { matdesc: { kek: 'k@1' } } });
    expect(uncopyableFromHead({ ...real, StorageClass: 'INTELLIGENT_TIERING', ArchiveStatus: 'DEEP_ARCHIVE_ACCESS' }, key)).toMatchObject({ reason: 'archived-storage-class' });
    expect(uncopyableFromHead({ ...real, SSECustomerAlgorithm: 'AES256' }, key)).toMatchObject({ reason: 'sse-c-object' });

    const denied = new InvalidObjectState({ message: 'The operation is not valid for the object storage class', $metadata: { httpStatusCode: 403 } });
    const failure = toItemFailure(denied, `CopyObject s3://${tb.bucket}/${key}`);
    expect(failure).toBeInstanceOf(ItemError);
    expect((failure as ItemError).reason).toBe('archived-storage-class'); // not access-denied
  });
});

describe('server-side encryption is asked for again on the self-copy (issue 14.3)', () => {
  it('an SSE-KMS object: the copy sends the same key id; RGW 16 refuses (501), which is a permanent failure and leaves it untouched', async () => {
    const key = await item({ ServerSideEncryption: 'aws:kms', SSEKMSKeyId: 'testkey-1' });
    await store.capabilities(); // probed once, before the requests this test looks at
    const before = await snapshot(key);
    expect(before).toMatchObject({ sse: 'aws:kms', kmsKey: 'testkey-1' });
    sent = [];
    const out = await rewrapItem(target(), { key });
    const copy = sent.find((r) => r.method === 'PUT' && 'x-amz-copy-source' in r.headers);
    expect(copy?.headers).toMatchObject({ 'x-amz-server-side-encryption': 'aws:kms', 'x-amz-server-side-encryption-aws-kms-key-id': 'testkey-1' });
    if (out.status === 'rewrapped') {
      // A server that copies SSE-KMS objects: the copy kept the encryption.
      expect(await snapshot(key)).toMatchObject({ sse: 'aws:kms', kmsKey: 'testkey-1' });
    } else {
      expect(s3TestEnv().server).toBe('ceph-rgw');
      expect(out).toMatchObject({ status: 'failed', reason: 'store-rejected' });
      expect((out as { detail: string }).detail).toMatch(/NotImplemented/);
      expect(await snapshot(key)).toEqual(before);
    }
  });
});

describe('requester pays (issue 14.3)', () => {
  it('with requesterPays every request of the store carries x-amz-request-payer, and the rewrap lands', async () => {
    const env = s3TestEnv();
    const payer = await freshBucket(client, 's3-requester-pays');
    try {
      await client.send(new PutBucketRequestPaymentCommand({ Bucket: payer.bucket, RequestPaymentConfiguration: { Payer: 'Requester' } }));
      const key = 'rp/1';
      await putEncrypted(client, payer.bucket, key, randomBytes(100), { placement: 'metadata', wrap: { kind: 'aes', material: k1, matdesc: { kek: 'k@1' } } });
      const paying = new S3EnvelopeStore({ client: recordingClient(), bucket: payer.bucket, placement: 'metadata', requesterPays: true });
      sent = [];
      const out = await rewrapItem({ ...target(), store: paying }, { key });
      expect(out).toMatchObject({ status: 'rewrapped', to: { id: 'k', version: '2' } });
      expect(sent.length).toBeGreaterThan(1);
      for (const r of sent) expect(r.headers['x-amz-request-payer'], `${r.method} ${r.path}`).toBe('requester');
      expect(env.endpoint).toBeTruthy();
    } finally {
      await payer.cleanup();
    }
  });
});

describe('a requester-pays bucket without requesterPays (issue 14.3)', () => {
  it('the object fails as requester-pays, nothing is written, and with requesterPays the same object is rewrapped', async () => {
    const env = s3TestEnv();
    const front = await requesterPaysFront(env.endpoint, { objectsOnly: true });
    const viaFront = createS3Client({ endpoint: front.url, region: env.region, credentials: env });
    try {
      const key = await item({});
      const before = await snapshot(key);
      const refused = await rewrapItem({ ...target(), store: new S3EnvelopeStore({ client: viaFront, bucket: tb.bucket, placement: 'metadata' }) }, { key });
      expect(refused).toMatchObject({ status: 'failed', reason: 'requester-pays' });
      expect((refused as { detail: string }).detail).toMatch(/"requesterPays": true/);
      expect(await snapshot(key)).toEqual(before);

      const paying = new S3EnvelopeStore({ client: viaFront, bucket: tb.bucket, placement: 'metadata', requesterPays: true });
      expect(await rewrapItem({ ...target(), store: paying }, { key })).toMatchObject({ status: 'rewrapped', to: { id: 'k', version: '2' } });
    } finally {
      viaFront.destroy();
      await front.close();
    }
  });
});

describe('requesterPays in the campaign spec (issue 14.3)', () => {
  const spec = (source: Record<string, unknown>) => ({
    name: 'rp',
    sources: [{ type: 's3', bucket: 'b', ...source }],
    provider: { type: 'local', keyringFile: '/nonexistent/keyring.json' },
    from: 'k@1',
    to: 'k@2',
  });
  const refusal = (input: unknown): string => {
    try {
      parseCampaignSpec(input);
      return 'accepted';
    } catch (err) {
      return (err as Error).message;
    }
  };

  it('is kept when true, absent otherwise, and anything but a boolean (or a misspelling) is refused with its path', () => {
    expect(parseCampaignSpec(spec({ requesterPays: true })).sources[0]).toMatchObject({ type: 's3', bucket: 'b', requesterPays: true });
    expect(parseCampaignSpec(spec({ requesterPays: false })).sources[0]).not.toHaveProperty('requesterPays');
    expect(refusal(spec({ requesterPays: 'yes' }))).toBe('campaign spec.sources[0].requesterPays: expected true or false (true: accept the charges of a requester-pays bucket)');
    expect(refusal(spec({ requesterpays: true }))).toBe('campaign spec.sources[0].requesterpays: unknown field; did you mean requesterPays?');
  });
});
