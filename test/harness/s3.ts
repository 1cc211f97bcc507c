/**
 * The test S3 server (started once per run by global-setup.ts) and a fresh bucket per test file:
 * vitest runs files in parallel against one server, so each file works in its own bucket and
 * deletes it (every object, version and unfinished upload) afterwards.
 */
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectVersionsCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import pLimit from 'p-limit';
import { inject } from 'vitest';

export interface S3TestEnv {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** 'ceph-rgw': the throwaway RGW from scripts/rgw (its quirks are known); 'external': S3_ENDPOINT. */
  server: 'ceph-rgw' | 'external';
}

declare module 'vitest' {
  export interface ProvidedContext {
    s3: S3TestEnv;
  }
}

/** The endpoint and keys the global setup provided (a local RGW, or S3_ENDPOINT). */
export function s3TestEnv(): S3TestEnv {
  const env = inject('s3');
  if (!env) throw new Error('no S3 test endpoint: run the tests through vitest (test/harness/global-setup.ts provides it)');
  return env;
}

export interface TestBucket {
  bucket: string;
  cleanup(): Promise<void>;
}

/** Creates a uniquely named bucket; `cleanup` empties it (all versions, open uploads) and deletes it. */
export async function freshBucket(client: S3Client, label: string): Promise<TestBucket> {
  const safe = label.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 40);
  const bucket = `t-${safe}-${randomBytes(4).toString('hex')}`;
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  return { bucket, cleanup: () => deleteBucket(client, bucket) };
}

/**
 * Empties and deletes the bucket. RGW may still answer BucketNotEmpty right after the last
 * delete (its bucket index settles asynchronously, notably after a client was SIGKILLed mid-PUT),
 * so the whole pass repeats until the bucket is gone or the deadline passes.
 */
async function deleteBucket(client: S3Client, bucket: string, settleMs = 30_000): Promise<void> {
  /*
   * The deadline starts once the first pass has emptied the bucket: emptying thousands of objects
   * on a loaded box can itself take longer than the settling time (seen in CI: BucketNotEmpty
   * after a 30 s first pass, with no second pass tried).
   */
  let deadline = Infinity;
  for (let pass = 1; ; pass++) {
    await emptyBucket(client, bucket);
    if (pass === 1) deadline = Date.now() + settleMs;
    try {
      await client.send(new DeleteBucketCommand({ Bucket: bucket }));
      return;
    } catch (err) {
      if ((err as { name?: string }).name !== 'BucketNotEmpty' || Date.now() > deadline) {
        throw new Error(`deleting test bucket ${bucket} failed after ${pass} pass(es)`, { cause: err });
      }
      await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** pass)));
    }
  }
}

async function emptyBucket(client: S3Client, bucket: string): Promise<void> {
  let keyMarker: string | undefined;
  let versionMarker: string | undefined;
  do {
    const page = await client.send(new ListObjectVersionsCommand({ Bucket: bucket, KeyMarker: keyMarker, VersionIdMarker: versionMarker }));
    const entries = [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])];
    // At most 32 at once: the SDK's 50 sockets queue the rest, and a request queued longer than
    // the client's connect timeout (3 s) fails unsent, which a loaded box reaches with 1,000.
    const limit = pLimit(32);
    await Promise.all(entries.map((v) => limit(() => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: v.Key, VersionId: v.VersionId })))));
    keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
    versionMarker = page.IsTruncated ? page.NextVersionIdMarker : undefined;
  } while (keyMarker !== undefined);
  const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  await Promise.all(
    (uploads.Uploads ?? []).map((u) => client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }))),
  );
}

/**
 * S3EC-V2-shaped envelope metadata with dummy bytes (a random 60-byte "wrapped key", a random
 * 12-byte IV): syntactically valid for the parser, meaningless to any KEK. For store tests.
 */
export function dummyV2Envelope(plaintextLength: number, matdesc: Record<string, string> = { kek: 'old' }): Record<string, string> {
  return {
    'x-amz-key-v2': randomBytes(60).toString('base64'),
    'x-amz-wrap-alg': 'AES/GCM',
    'x-amz-cek-alg': 'AES/GCM/NoPadding',
    'x-amz-iv': randomBytes(12).toString('base64'),
    'x-amz-matdesc': JSON.stringify(matdesc),
    'x-amz-tag-len': '128',
    'x-amz-unencrypted-content-length': String(plaintextLength),
  };
}
