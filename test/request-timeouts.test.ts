/**
 * Every S3 and KMS request has a timeout that really ends it (issue 13, point 2): a request the
 * server does not answer fails as a transient item failure after the configured time, instead of
 * holding its item, its batch and the batch's lease for as long as the server stays silent.
 * (@smithy/node-http-handler 4 only logs a warning when `requestTimeout` passes unless
 * `throwOnRequestTimeout` is set: the KMS client had a timeout on paper only.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { performance } from 'node:perf_hooks';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { CreateKeyCommand, GenerateDataKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { createS3Client } from '../src/stores/s3-client.ts';
import { S3EnvelopeStore } from '../src/stores/s3-envelope-store.ts';
import { createKmsClient } from '../src/kek/kms-client.ts';
import { kmsEncryptionContext, KmsKekProvider } from '../src/kek/kms-kek-provider.ts';
import type { WrappedDek } from '../src/core/kek-ref.ts';
import { startKmsServer, type KmsServer } from '../dev/kms-server/server.ts';
import { ItemError } from '../src/core/errors.ts';
import { dummyV2Envelope, freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';
import { startTapProxy, type TapProxy } from './support/tap-proxy.ts';

const TIMEOUT_MS = 500;
const SILENCE_MS = 4_000;

let direct: S3Client;
let tb: TestBucket;
let proxy: TapProxy;
let kmsServer: KmsServer;
let hold = false;

beforeAll(async () => {
  const env = s3TestEnv();
  direct = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  tb = await freshBucket(direct, 'timeouts');
  // Holds every request while `hold` is set: the server sees nothing, the client hears nothing.
  proxy = await startTapProxy(env.endpoint, async () => {
    if (hold) await new Promise((r) => setTimeout(r, SILENCE_MS));
  });
  kmsServer = await startKmsServer();
});
afterAll(async () => {
  await tb?.cleanup();
  direct?.destroy();
  await proxy?.close();
  await kmsServer?.close();
});

async function failureWithin<T>(p: Promise<T>): Promise<{ err: unknown; ms: number }> {
  const t0 = performance.now();
  const err = await p.then(
    () => new Error('expected the call to fail'),
    (e: unknown) => e,
  );
  return { err, ms: performance.now() - t0 };
}

describe('request timeouts', () => {
  it('an S3 request with no answer fails as transient store-unavailable after requestTimeoutMs', async () => {
    const env = s3TestEnv();
    const key = 'silent/1';
    await direct.send(new PutObjectCommand({ Bucket: tb.bucket, Key: key, Body: Buffer.alloc(64), Metadata: dummyV2Envelope(48) }));
    const client = createS3Client({ endpoint: proxy.url, region: env.region, credentials: env, requestTimeoutMs: TIMEOUT_MS, maxAttempts: 1 });
    try {
      const store = new S3EnvelopeStore({ client, bucket: tb.bucket, placement: 'metadata' });
      hold = true;
      const { err, ms } = await failureWithin(store.read({ key }));
      hold = false;
      expect(err, String(err)).toBeInstanceOf(ItemError);
      expect((err as ItemError).reason).toBe('store-unavailable');
      expect((err as ItemError).transient).toBe(true);
      expect(ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
      expect(ms).toBeLessThan(SILENCE_MS - 1_000);
    } finally {
      hold = false;
      client.destroy();
    }
  });

  it('a KMS call with no answer fails as transient provider-unavailable after requestTimeoutMs', async () => {
    const credentials = { accessKeyId: 't', secretAccessKey: 't' };
    const setup = createKmsClient({ endpoint: kmsServer.url, region: 'us-east-1', credentials });
    const client: KMSClient = createKmsClient({ endpoint: kmsServer.url, region: 'us-east-1', credentials, maxAttempts: 1, requestTimeoutMs: TIMEOUT_MS });
    try {
      const a = (await setup.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
      const b = (await setup.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
      const dek: WrappedDek = { wrapAlg: 'kms+context', cekAlg: 'AES/GCM/NoPadding', wrapped: Buffer.alloc(0), matdesc: { kms_cmk_id: a } };
      const out = await setup.send(new GenerateDataKeyCommand({ KeyId: a, KeySpec: 'AES_256', EncryptionContext: kmsEncryptionContext(dek) }));
      const wrapped = { ...dek, wrapped: Buffer.from(out.CiphertextBlob!) };
      kmsServer.setFaults({ latencyMs: SILENCE_MS });
      const { err, ms } = await failureWithin(new KmsKekProvider(client).rewrap(wrapped, { id: a }, { id: b }));
      expect(err, String(err)).toBeInstanceOf(ItemError);
      expect((err as ItemError).reason).toBe('provider-unavailable');
      expect((err as ItemError).transient).toBe(true);
      expect(ms).toBeLessThan(SILENCE_MS - 1_000);
    } finally {
      kmsServer.setFaults({});
      client.destroy();
      setup.destroy();
    }
  });
});
