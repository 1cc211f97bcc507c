/** The capability probe tells plainly which compare-and-swap an S3 endpoint gives. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ListObjectVersionsCommand, ListObjectsV2Command, PutBucketVersioningCommand, type S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../src/stores/s3-client.ts';
import { copyLevel, describeCapabilities, instructionLevel, multipartLevel, probeS3Capabilities } from '../src/stores/s3-capabilities.ts';
import { S3EnvelopeStore } from '../src/stores/s3-envelope-store.ts';
import { freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';

let client: S3Client;
let tb: TestBucket;
let versioned: TestBucket;

beforeAll(async () => {
  const env = s3TestEnv();
  client = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  tb = await freshBucket(client, 's3-capabilities');
  versioned = await freshBucket(client, 's3-capabilities-versioned');
  await client.send(new PutBucketVersioningCommand({ Bucket: versioned.bucket, VersioningConfiguration: { Status: 'Enabled' } }));
});
afterAll(async () => {
  await tb?.cleanup();
  await versioned?.cleanup();
  client?.destroy();
});

describe('probeS3Capabilities', () => {
  it('finds what Ceph RGW honours: legacy x-amz-copy-if-match, PutObject If-Match unquoted, nothing for multipart', async (ctx) => {
    if (s3TestEnv().server !== 'ceph-rgw') ctx.skip();
    const caps = await probeS3Capabilities(client, tb.bucket);
    expect(caps).toMatchObject({
      copySourceIfMatch: false,
      copyLegacyIfMatch: 'quoted',
      copyDestinationIfMatch: false,
      partCopySourceIfMatch: false,
      partCopyLegacyIfMatch: false,
      completeIfMatch: false,
      putIfMatch: 'unquoted',
    });
    expect([copyLevel(caps), multipartLevel(caps), instructionLevel(caps)]).toEqual(['content', 'none', 'envelope']);
    const text = describeCapabilities(caps).join('\n');
    expect(text).toContain('legacy x-amz-copy-if-match');
    expect(text).toContain('large objects (multipart copy): NO compare-and-swap');
  });

  it('leaves no scratch object or upload behind', async () => {
    await probeS3Capabilities(client, tb.bucket);
    const left = await client.send(new ListObjectsV2Command({ Bucket: tb.bucket }));
    expect(left.KeyCount ?? 0).toBe(0);
  });

  it('in a versioned bucket, leaves no version and no delete marker of its scratch object', async () => {
    await probeS3Capabilities(client, versioned.bucket);
    const left = await client.send(new ListObjectVersionsCommand({ Bucket: versioned.bucket }));
    expect([...(left.Versions ?? []), ...(left.DeleteMarkers ?? [])].map((v) => v.Key)).toEqual([]);
  });

  it('is run once per store and cached', async () => {
    const store = new S3EnvelopeStore({ client, bucket: tb.bucket });
    const [a, b] = await Promise.all([store.capabilities(), store.capabilities()]);
    expect(a).toBe(b);
    expect(await store.capabilities()).toBe(a);
    expect(a.bucket).toBe(tb.bucket);
  });
});
