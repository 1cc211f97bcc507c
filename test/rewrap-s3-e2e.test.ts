/**
 * Issue acceptance 1-3 for S3: objects written as the official S3 Encryption Client V2 writes
 * them (both wrap algorithms x both placements, 0 B to 6 MiB, some uploaded in parts) are
 * rewrapped against a real S3 server (RGW) and the local KMS server, then decrypted by
 * independent code under the new KEK only.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { CreateKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { createS3Client } from '../src/stores/s3-client.ts';
import { S3EnvelopeStore } from '../src/stores/s3-envelope-store.ts';
import { createKmsClient } from '../src/kek/kms-client.ts';
import { KmsKekProvider } from '../src/kek/kms-kek-provider.ts';
import { LocalKeyringProvider } from '../src/kek/local-keyring-provider.ts';
import { parseKeyring } from '../src/kek/keyring-file.ts';
import { startKmsServer, type KmsServer } from '../dev/kms-server/server.ts';
import { rewrapBatch } from '../src/rewrap/rewrap-batch.ts';
import { countOutcomes, type ItemOutcome } from '../src/rewrap/outcome.ts';
import type { EnvelopeStore } from '../src/stores/envelope-store.ts';
import { getDecrypted, matdescKey, putEncrypted, type Wrapping } from '../dev/reference/s3ec-client.ts';
import { freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';
import { LeakGuard } from './support/leak-guard.ts';

const MiB = 1024 * 1024;
const oldAes = { material: randomBytes(32), matdesc: { kek: 'photos@1' } };
const newAes = { material: randomBytes(32), matdesc: { kek: 'photos@2' } };
const keyring = () =>
  new LocalKeyringProvider(
    parseKeyring({
      keks: [
        { id: 'photos', version: '1', material: oldAes.material.toString('base64'), matdesc: oldAes.matdesc },
        { id: 'photos', version: '2', material: newAes.material.toString('base64'), matdesc: newAes.matdesc },
      ],
    }),
  );

let s3: S3Client;
let kms: KMSClient;
let kmsServer: KmsServer;
let tb: TestBucket;
let store: EnvelopeStore;
let keyA: string;
let keyB: string;
const guard = new LeakGuard();
guard.secret(oldAes.material, newAes.material);

interface Planted {
  key: string;
  alg: 'aes' | 'kms';
  placement: 'metadata' | 'instruction';
  payload: Buffer;
  contentType: string;
  userMeta: Record<string, string>;
}
const planted: Planted[] = [];

/** 0 B .. 6 MiB: mostly small, a few large; every 25th large one uploaded in parts. */
function payloadSize(i: number): number {
  if (i % 50 === 7) return 6 * MiB;
  if (i % 50 === 19) return 1 * MiB + 3;
  return [0, 1, 15, 16, 17, 1000, 4096, 65_537][i % 8]!;
}

beforeAll(async () => {
  const env = s3TestEnv();
  s3 = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  kmsServer = await startKmsServer();
  kms = createKmsClient({ endpoint: kmsServer.url, region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
  keyA = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
  keyB = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
  tb = await freshBucket(s3, 'e2e');
  store = new S3EnvelopeStore({ client: s3, bucket: tb.bucket });
  const jobs: (() => Promise<void>)[] = [];
  for (let i = 0; i < 400; i++) {
    const alg = i % 2 === 0 ? 'aes' : 'kms';
    const placement = i % 4 < 2 ? 'metadata' : 'instruction';
    const size = payloadSize(i);
    const p: Planted = {
      key: `obj/${alg}/${placement}/${String(i).padStart(3, '0')} é+x`,
      alg,
      placement,
      payload: randomBytes(size),
      contentType: i % 3 === 0 ? 'image/jpeg' : 'application/x-custom',
      userMeta: { owner: `team-${i % 5}`, 'x-app-note': 'keep me' },
    };
    planted.push(p);
    const wrap: Wrapping = alg === 'aes' ? { kind: 'aes', ...oldAes } : { kind: 'kms', kms, keyId: keyA, matdesc: { tenant: `t${i % 3}` } };
    jobs.push(async () => {
      const { dek } = await putEncrypted(s3, tb.bucket, p.key, p.payload, {
        placement,
        wrap,
        contentType: p.contentType,
        userMeta: p.userMeta,
        multipartPartBytes: size === 6 * MiB && i % 100 === 7 ? 5 * MiB : undefined,
      });
      guard.secret(dek);
    });
  }
  for (let i = 0; i < jobs.length; i += 16) await Promise.all(jobs.slice(i, i + 16).map((j) => j()));
}, 300_000);

afterAll(async () => {
  await tb?.cleanup();
  await kmsServer?.close();
});

async function rotateAll(): Promise<ItemOutcome[]> {
  const items = planted.map((p) => ({ key: p.key }));
  const local = await rewrapBatch({ store, provider: keyring(), from: { id: 'photos', version: '1' }, to: { id: 'photos', version: '2' } }, items, { concurrency: 16 });
  const viaKms = await rewrapBatch({ store, provider: new KmsKekProvider(kms), from: { id: keyA }, to: { id: keyB } }, items, { concurrency: 16 });
  guard.text(...local, ...viaKms);
  // Each item is rewrapped by the campaign whose source wraps it, and skipped by the other.
  return planted.map((p, i) => (p.alg === 'aes' ? local[i]! : viaKms[i]!));
}

async function snapshot(): Promise<string[]> {
  return Promise.all(
    planted.flatMap((p) => [p.key, ...(p.placement === 'instruction' ? [`${p.key}.instruction`] : [])]).map(async (key) => {
      const h = await s3.send(new HeadObjectCommand({ Bucket: tb.bucket, Key: key }));
      return `${key} ${h.ETag} ${h.LastModified?.toISOString()} ${JSON.stringify(h.Metadata)}`;
    }),
  );
}

describe('S3EC V2 objects rewrapped against a real S3 server', () => {
  it('rewraps 400 objects (both wrap algorithms x both placements, 0 B to 6 MiB); each decrypts to its original bytes under the new KEK only', async () => {
    const outcomes = await rotateAll();
    expect(countOutcomes(outcomes)).toEqual({ rewrapped: 400, skipped: 0, failed: 0, retry: 0 });
    const newOnly = { aes: new Map([[matdescKey(newAes.matdesc), newAes.material]]), kms, kmsKeyId: keyB };
    const oldOnly = { aes: new Map([[matdescKey(newAes.matdesc), oldAes.material]]), kms, kmsKeyId: keyA };
    for (let i = 0; i < planted.length; i += 20) {
      await Promise.all(
        planted.slice(i, i + 20).map(async (p) => {
          const d = await getDecrypted(s3, tb.bucket, p.key, newOnly);
          expect(d.payload.equals(p.payload), p.key).toBe(true);
          expect(d.contentType).toBe(p.contentType);
          for (const [k, v] of Object.entries(p.userMeta)) expect(d.userMeta[k]).toBe(v);
          await expect(getDecrypted(s3, tb.bucket, p.key, oldOnly), `${p.key} must not open under the old KEK`).rejects.toThrow();
        }),
      );
    }
  });

  it('running the same rewrap again writes nothing: every object is skipped as already at the target', async () => {
    const before = await snapshot();
    const outcomes = await rotateAll();
    expect(countOutcomes(outcomes)).toEqual({ rewrapped: 0, skipped: 400, failed: 0, retry: 0 });
    expect(outcomes.every((o) => o.status === 'skipped' && o.reason === 'already-at-target')).toBe(true);
    expect(await snapshot()).toEqual(before);
  });

  it.each(['metadata', 'instruction'] as const)(
    'an application write between our read and our write is never overwritten (%s placement): the new content is rewrapped instead',
    async (placement) => {
      const key = `race/${placement}`;
      const first = randomBytes(100);
      const second = randomBytes(200);
      await putEncrypted(s3, tb.bucket, key, first, { placement, wrap: { kind: 'aes', ...oldAes } });
      let raced = false;
      const racing: EnvelopeStore = {
        id: store.id,
        read: (item, signal) => store.read(item, signal),
        casLevel: (item, signal) => store.casLevel(item, signal),
        async writeIfUnchanged(item, token, next, signal) {
          if (!raced) {
            raced = true; // the application replaces the object (and its envelope) right now
            const { dek } = await putEncrypted(s3, tb.bucket, key, second, { placement, wrap: { kind: 'aes', ...oldAes } });
            guard.secret(dek);
          }
          return store.writeIfUnchanged(item, token, next, signal);
        },
      };
      const [o] = await rewrapBatch({ store: racing, provider: keyring(), from: { id: 'photos', version: '1' }, to: { id: 'photos', version: '2' } }, [{ key }], { concurrency: 1 });
      expect(o).toMatchObject({ status: 'rewrapped', conflicts: 1 });
      const d = await getDecrypted(s3, tb.bucket, key, { aes: new Map([[matdescKey(newAes.matdesc), newAes.material]]) });
      expect(d.payload.equals(second)).toBe(true);
    },
  );

  it('an object that is not encrypted, or under another KEK, is left untouched', async () => {
    await s3.send(new PutObjectCommand({ Bucket: tb.bucket, Key: 'plain.txt', Body: 'hello' }));
    const [o] = await rewrapBatch({ store, provider: keyring(), from: { id: 'photos', version: '1' }, to: { id: 'photos', version: '2' } }, [{ key: 'plain.txt' }], { concurrency: 1 });
    expect(o).toMatchObject({ status: 'failed', reason: 'not-encrypted' });
  });

  it('no DEK or KEK bytes reach an outcome, log line or error message (invariant 5)', () => {
    expect(guard.findLeaks()).toEqual([]);
  });
});
