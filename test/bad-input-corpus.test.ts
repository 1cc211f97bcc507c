/**
 * Issue acceptance 4: a corpus of malformed, unsupported and out-of-reach items. Each gets one
 * clear reason code, and no item in it is modified (objects, instruction files, rows).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { CreateKeyCommand, DisableKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { createS3Client } from '../src/stores/s3-client.ts';
import { S3EnvelopeStore } from '../src/stores/s3-envelope-store.ts';
import { PgTableStore } from '../src/stores/pg-table-store.ts';
import { createEnvelopeTable } from '../src/stores/pg-table-schema.ts';
import { createKmsClient } from '../src/kek/kms-client.ts';
import { KmsKekProvider } from '../src/kek/kms-kek-provider.ts';
import { LocalKeyringProvider } from '../src/kek/local-keyring-provider.ts';
import { parseKeyring } from '../src/kek/keyring-file.ts';
import { startKmsServer, type KmsServer } from '../dev/kms-server/server.ts';
import { rewrapBatch } from '../src/rewrap/rewrap-batch.ts';
import type { ItemOutcome } from '../src/rewrap/outcome.ts';
import type { KekProvider } from '../src/kek/kek-provider.ts';
import type { KekSelector } from '../src/core/kek-ref.ts';
import type { EnvelopeStore } from '../src/stores/envelope-store.ts';
import { envelopeFields, encryptPayload, aesWrap, type Wrapping } from '../dev/reference/s3ec-client.ts';
import { freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';
import { freshSchema, type TestSchema } from './harness/pg.ts';
import { LeakGuard } from './support/leak-guard.ts';

const k1 = randomBytes(32);
const k2 = randomBytes(32);
const ring = (state1 = 'enabled') =>
  new LocalKeyringProvider(
    parseKeyring({
      keks: [
        { id: 'photos', version: '1', material: k1.toString('base64'), matdesc: { kek: 'photos@1' }, state: state1 },
        { id: 'photos', version: '2', material: k2.toString('base64'), matdesc: { kek: 'photos@2' } },
      ],
    }),
  );
const from = { id: 'photos', version: '1' };
const to = { id: 'photos', version: '2' };

let s3: S3Client;
let kms: KMSClient;
let kmsServer: KmsServer;
let tb: TestBucket;
let db: TestSchema;
let keyA: string;
let keyB: string;
let keyOff: string;
const guard = new LeakGuard();
guard.secret(k1, k2);

interface Case {
  name: string;
  expect: string;
  run: 'local' | 'local-disabled' | 'kms' | 'kms-off' | 'rows';
  key: string;
}
const cases: Case[] = [];

async function validMeta(wrap: 'aes' | 'kms', overrides: Record<string, string | undefined>, kmsKeyId = keyA): Promise<{ meta: Record<string, string>; body: Buffer }> {
  const dek = randomBytes(32);
  guard.secret(dek);
  const payload = randomBytes(64);
  const { iv, body: ct } = encryptPayload(dek, payload);
  const w: Wrapping = wrap === 'aes' ? { kind: 'aes' as const, material: k1, matdesc: { kek: 'photos@1' } } : { kind: 'kms' as const, kms, keyId: kmsKeyId, matdesc: { app: 'x' } };
  const meta = { ...(await envelopeFields(w, dek, iv, payload.length)), ...overrides };
  for (const [k, v] of Object.entries(meta)) if (v === undefined) delete meta[k];
  return { meta: meta as Record<string, string>, body: ct };
}

async function plantObject(name: string, expectReason: string, run: Case['run'], meta: Record<string, string>, body: Buffer = randomBytes(80), instruction?: string | Record<string, string>) {
  const key = `corpus/${cases.length}-${name.replace(/[^a-z0-9]+/gi, '-')}`;
  await s3.send(new PutObjectCommand({ Bucket: tb.bucket, Key: key, Body: body, Metadata: meta }));
  if (instruction !== undefined) {
    await s3.send(
      new PutObjectCommand({
        Bucket: tb.bucket,
        Key: `${key}.instruction`,
        Body: typeof instruction === 'string' ? instruction : JSON.stringify(instruction),
        Metadata: { 'x-amz-crypto-instr-file': '' },
      }),
    );
  }
  cases.push({ name, expect: expectReason, run, key });
}

beforeAll(async () => {
  const env = s3TestEnv();
  s3 = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  kmsServer = await startKmsServer();
  kms = createKmsClient({ endpoint: kmsServer.url, region: 'us-east-1', credentials: { accessKeyId: 't', secretAccessKey: 't' } });
  [keyA, keyB, keyOff] = await Promise.all([0, 1, 2].map(async () => (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!));
  tb = await freshBucket(s3, 'corpus');
  db = await freshSchema('corpus');

  const aes = (o: Record<string, string | undefined>) => validMeta('aes', o);
  const b64 = (n: number) => randomBytes(n).toString('base64');
  const plant = async (name: string, reason: string, o: Record<string, string | undefined>, run: Case['run'] = 'local') => {
    const { meta, body } = await aes(o);
    await plantObject(name, reason, run, meta, body);
  };
  await plant('wrapped key truncated', 'malformed-wrapped-key', { 'x-amz-key-v2': b64(40) });
  await plant('wrapped key not base64', 'malformed-wrapped-key', { 'x-amz-key-v2': '!!not*base64!!' });
  await plant('wrapped key empty', 'malformed-wrapped-key', { 'x-amz-key-v2': '' });
  await plant('tag length 96', 'malformed-tag-length', { 'x-amz-tag-len': '96' });
  await plant('tag length missing', 'malformed-tag-length', { 'x-amz-tag-len': undefined });
  await plant('unknown wrap algorithm', 'unsupported-wrap-alg', { 'x-amz-wrap-alg': 'AES/XTS' });
  await plant('legacy kms wrap', 'unsupported-wrap-alg', { 'x-amz-wrap-alg': 'kms' });
  await plant('AESWrap', 'unsupported-wrap-alg', { 'x-amz-wrap-alg': 'AESWrap' });
  await plant('RSA-OAEP', 'unsupported-wrap-alg', { 'x-amz-wrap-alg': 'RSA/ECB/OAEPWithSHA-256AndMGF1Padding' });
  await plant('CBC content cipher', 'unsupported-cek-alg', { 'x-amz-cek-alg': 'AES/CBC/PKCS5Padding' });
  await plant('content cipher missing', 'malformed-envelope', { 'x-amz-cek-alg': undefined });
  await plant('wrap algorithm missing', 'malformed-envelope', { 'x-amz-wrap-alg': undefined });
  await plant('matdesc not JSON', 'malformed-matdesc', { 'x-amz-matdesc': '{kek: photos@1' });
  await plant('matdesc a JSON array', 'malformed-matdesc', { 'x-amz-matdesc': '["photos@1"]' });
  await plant('matdesc non-string value', 'malformed-matdesc', { 'x-amz-matdesc': '{"kek": 1}' });
  await plant('IV of 8 bytes', 'malformed-iv', { 'x-amz-iv': b64(8) });
  await plant('IV not base64', 'malformed-iv', { 'x-amz-iv': 'zz**' });
  await plant('unknown KEK', 'unknown-kek', { 'x-amz-matdesc': '{"kek":"photos@9"}' });
  const tampered = Buffer.from((await aes({})).meta['x-amz-key-v2']!, 'base64');
  tampered[30] ^= 0x40;
  await plant('tampered wrapped key', 'invalid-ciphertext', { 'x-amz-key-v2': tampered.toString('base64') });
  await plant('source KEK disabled', 'kek-disabled', {}, 'local-disabled');
  await plantObject('S3EC V1 envelope', 'unsupported-v1', 'local', { 'x-amz-key': b64(48), 'x-amz-iv': b64(16), 'x-amz-matdesc': '{}' });
  await plantObject('S3EC V3 envelope', 'unsupported-v3', 'local', { 'x-amz-3': b64(60), 'x-amz-w': '12', 'x-amz-c': '115' });
  await plantObject('instruction file missing', 'instruction-file-missing', 'local', { 'x-amz-unencrypted-content-length': '64' });
  await plantObject('instruction file not JSON', 'instruction-file-malformed', 'local', { 'x-amz-unencrypted-content-length': '64' }, undefined, '{"x-amz-key-v2": ');
  await plantObject('instruction file a JSON array', 'instruction-file-malformed', 'local', { 'x-amz-unencrypted-content-length': '64' }, undefined, '[1,2]');
  await plantObject('instruction file holds a V1 envelope', 'unsupported-v1', 'local', {}, undefined, { 'x-amz-key': b64(48), 'x-amz-iv': b64(16) });
  await plantObject('not encrypted at all', 'not-encrypted', 'local', { owner: 'someone' });
  cases.push({ name: 'deleted before its turn', expect: 'item-missing', run: 'local', key: 'corpus/never-written' });
  // Through KMS
  const kmsCase = async (name: string, reason: string, o: Record<string, string | undefined>, run: Case['run'] = 'kms') => {
    const { meta, body } = await validMeta('kms', o, run === 'kms-off' ? keyOff : keyA);
    await plantObject(name, reason, run, meta, body);
  };
  await kmsCase('wrong encryption context', 'invalid-ciphertext', { 'x-amz-matdesc': '{"app":"y","aws:x-amz-cek-alg":"AES/GCM/NoPadding"}' });
  await kmsCase('KMS blob too short', 'malformed-wrapped-key', { 'x-amz-key-v2': b64(10) });
  await kmsCase('KMS blob corrupt', 'invalid-ciphertext', { 'x-amz-key-v2': b64(200) });
  await kmsCase('KMS source key disabled', 'kek-disabled', {}, 'kms-off');
  await kms.send(new DisableKeyCommand({ KeyId: keyOff }));

  // Postgres rows
  const cols = await createEnvelopeTable(db.pool, 'rows');
  const good = aesWrap(k1, randomBytes(32));
  await db.pool.query(
    `INSERT INTO rows (id, wrapped_dek, kek_id, kek_version) VALUES
       (1, NULL, 'photos', '1'), (2, $1, 'photos', '1'), (3, $2, NULL, '1'), (4, $2, 'photos', '9'), (5, $3, 'photos', '1')`,
    [randomBytes(33), good, Buffer.concat([good.subarray(0, 59), Buffer.from([good[59]! ^ 1])])],
  );
  rowsStore = new PgTableStore({ pool: db.pool, ...cols, wrapAlg: 'AES/GCM' });
  for (const [id, reason, name] of [
    ['1', 'malformed-envelope', 'row with NULL wrapped key'],
    ['2', 'malformed-wrapped-key', 'row with a 33-byte wrapped key'],
    ['3', 'malformed-envelope', 'row with NULL KEK id'],
    ['4', 'unknown-kek', 'row under an unknown KEK version'],
    ['5', 'invalid-ciphertext', 'row whose wrapped key fails authentication'],
    ['6', 'item-missing', 'row deleted before its turn'],
  ] as const) {
    cases.push({ name, expect: reason, run: 'rows', key: id });
  }
}, 120_000);

let rowsStore: PgTableStore;

afterAll(async () => {
  await tb?.cleanup();
  await db?.drop();
  await kmsServer?.close();
});

async function s3Snapshot(): Promise<string[]> {
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: tb.bucket }));
  return Promise.all(
    (listed.Contents ?? []).map(async (o) => {
      const h = await s3.send(new HeadObjectCommand({ Bucket: tb.bucket, Key: o.Key }));
      return `${o.Key} ${h.ETag} ${h.LastModified?.toISOString()} ${JSON.stringify(h.Metadata)}`;
    }),
  );
}

describe('bad-input corpus', () => {
  it('has at least 25 cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(25);
  });

  it('gives every item one clear reason code and modifies none', async () => {
    const s3Before = await s3Snapshot();
    const rowsBefore = (await db.pool.query('SELECT * FROM rows ORDER BY id')).rows;
    const s3Store = new S3EnvelopeStore({ client: s3, bucket: tb.bucket });
    const runs: Record<Case['run'], { store: EnvelopeStore; provider: KekProvider; from: KekSelector; to: KekSelector }> = {
      local: { store: s3Store, provider: ring(), from, to },
      'local-disabled': { store: s3Store, provider: ring('disabled'), from, to },
      kms: { store: s3Store, provider: new KmsKekProvider(kms), from: { id: keyA }, to: { id: keyB } },
      'kms-off': { store: s3Store, provider: new KmsKekProvider(kms), from: { id: keyOff }, to: { id: keyB } },
      rows: { store: rowsStore, provider: ring(), from, to },
    };
    const got: Record<string, string> = {};
    const want: Record<string, string> = {};
    for (const [run, target] of Object.entries(runs)) {
      const mine = cases.filter((c) => c.run === run);
      const outcomes: ItemOutcome[] = await rewrapBatch(target, mine.map((c) => ({ key: c.key })), { concurrency: 4 });
      guard.text(...outcomes);
      mine.forEach((c, i) => {
        const o = outcomes[i]!;
        want[c.name] = c.expect;
        got[c.name] = o.status === 'rewrapped' ? 'REWRAPPED' : o.reason;
        if (o.status === 'failed') expect(o.detail, c.name).toContain(c.key); // the message names the item
      });
    }
    expect(got).toEqual(want);
    expect(await s3Snapshot()).toEqual(s3Before);
    expect((await db.pool.query('SELECT * FROM rows ORDER BY id')).rows).toEqual(rowsBefore);
  });

  it('no DEK or KEK bytes reach an outcome or error message (invariant 5)', () => {
    expect(guard.findLeaks()).toEqual([]);
  });
});
