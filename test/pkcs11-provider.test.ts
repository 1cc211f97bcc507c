/**
 * The PKCS#11 KEK provider against a real SoftHSM2 token (issue 19, point 1): Postgres rows
 * (AESWrapPad, RFC 5649) and S3 objects (AESWrap, RFC 3394, S3EC legacy envelope) are rewrapped
 * inside the token, then decrypted by independent code (Node's OpenSSL key unwrap) under the new
 * KEK's known bytes only. AES/GCM envelopes, which SoftHSM2 cannot wrap with, are refused with a
 * reason; token KEK lifecycle (generate, disable, destroy, verify) and error classes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDecipheriv, randomBytes } from 'node:crypto';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import pkcs11js from 'pkcs11js';
import { freshSchema, type TestSchema } from './harness/pg.ts';
import { freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';
import { createS3Client } from '../src/stores/s3-client.ts';
import { S3EnvelopeStore } from '../src/stores/s3-envelope-store.ts';
import { createEnvelopeTable } from '../src/stores/pg-table-schema.ts';
import { PgTableStore } from '../src/stores/pg-table-store.ts';
import { rewrapBatch } from '../src/rewrap/rewrap-batch.ts';
import { countOutcomes } from '../src/rewrap/outcome.ts';
import { Pkcs11KekProvider } from '../src/kek/pkcs11-kek-provider.ts';
import { KekMap } from '../src/kek/kek-map.ts';
import { Pkcs11KekAdmin } from '../src/kek/pkcs11-kek-admin.ts';
import { Pkcs11KekNames } from '../src/kek/pkcs11-kek-names.ts';
import { Pkcs11Token } from '../src/kek/pkcs11-token.ts';
import { classifyPkcs11Error, CKR } from '../src/kek/pkcs11-errors.ts';
import { ConfigError, ItemError } from '../src/core/errors.ts';
import { parseCampaignSpec } from '../src/campaign/spec.ts';
import { aesWrap, encryptPayload, CEK } from '../dev/reference/s3ec-client.ts';
import { LeakGuard } from './support/leak-guard.ts';
import { initTestToken, keyUnwrap, keyWrap, SOFTHSM_MODULE, type TestToken } from './support/softhsm.ts';

const rows1 = randomBytes(32);
const rows2 = randomBytes(32);
const photos1 = randomBytes(32);
const photos2 = randomBytes(32);
const guard = new LeakGuard();
guard.secret(rows1, rows2, photos1, photos2);

let hsm: TestToken;
let provider: Pkcs11KekProvider;
let db: TestSchema;
let s3: S3Client;
let tb: TestBucket;

beforeAll(async () => {
  hsm = initTestToken('hsm-provider', ['hsm-spare']);
  await hsm.importKek('rows', '1', rows1);
  await hsm.importKek('rows', '2', rows2);
  await hsm.importKek('photos', '1', photos1);
  await hsm.importKek('photos', '2', photos2);
  provider = new Pkcs11KekProvider(hsm.token);
  db = await freshSchema('pkcs11');
  const env = s3TestEnv();
  s3 = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  tb = await freshBucket(s3, 'pkcs11');
});
afterAll(async () => {
  await tb?.cleanup();
  await db?.drop();
  hsm?.close();
});

/** Rows 1..n under `rows@1` wrapped with RFC 5649, as an application using the HSM writes them. */
async function plantRows(table: string, n: number): Promise<Map<string, Buffer>> {
  const cols = await createEnvelopeTable(db.pool, table);
  const deks = new Map<string, Buffer>();
  const ids: string[] = [];
  const payloads: Buffer[] = [];
  const ivs: Buffer[] = [];
  const wrapped: Buffer[] = [];
  for (let i = 1; i <= n; i++) {
    const dek = randomBytes(32);
    guard.secret(dek);
    const { iv, body } = encryptPayload(dek, Buffer.from(`row ${i}`));
    deks.set(String(i), dek);
    ids.push(String(i));
    payloads.push(body);
    ivs.push(iv);
    wrapped.push(keyWrap('AESWrapPad', rows1, dek));
  }
  await db.pool.query(
    `INSERT INTO ${table} (id, payload, iv, wrapped_dek, kek_id, kek_version)
     SELECT id, p, iv, w, 'rows', '1' FROM unnest($1::bigint[], $2::bytea[], $3::bytea[], $4::bytea[]) AS u(id, p, iv, w)`,
    [ids, payloads, ivs, wrapped],
  );
  tableCols.set(table, cols);
  return deks;
}

const tableCols = new Map<string, Awaited<ReturnType<typeof createEnvelopeTable>>>();
const rowStore = async (table: string) => new PgTableStore({ pool: db.pool, ...tableCols.get(table)!, wrapAlg: 'AESWrapPad' });

async function putObject(key: string, wrapAlg: 'AESWrap' | 'AES/GCM', payload: Buffer): Promise<Buffer> {
  const dek = randomBytes(32);
  guard.secret(dek);
  const { iv, body } = encryptPayload(dek, payload);
  const wrapped = wrapAlg === 'AESWrap' ? keyWrap('AESWrap', photos1, dek) : aesWrap(photos1, dek);
  await s3.send(
    new PutObjectCommand({
      Bucket: tb.bucket,
      Key: key,
      Body: body,
      Metadata: {
        'x-amz-key-v2': wrapped.toString('base64'),
        'x-amz-wrap-alg': wrapAlg,
        'x-amz-cek-alg': CEK,
        'x-amz-iv': iv.toString('base64'),
        'x-amz-matdesc': JSON.stringify({ kek: 'photos@1' }),
        'x-amz-tag-len': '128',
        'x-amz-unencrypted-content-length': String(payload.length),
        owner: 'team-a',
      },
    }),
  );
  return dek;
}

/** Independent S3 reader: unwraps with the given KEK bytes only, then decrypts the content. */
async function decryptObject(key: string, kek: Buffer): Promise<{ payload: Buffer; dek: Buffer; meta: Record<string, string> }> {
  const obj = await s3.send(new GetObjectCommand({ Bucket: tb.bucket, Key: key }));
  const body = Buffer.from(await obj.Body!.transformToByteArray());
  const meta = obj.Metadata ?? {};
  const dek = keyUnwrap('AESWrap', kek, Buffer.from(meta['x-amz-key-v2']!, 'base64'));
  const d = createDecipheriv('aes-256-gcm', dek, Buffer.from(meta['x-amz-iv']!, 'base64'));
  d.setAuthTag(body.subarray(body.length - 16));
  return { payload: Buffer.concat([d.update(body.subarray(0, body.length - 16)), d.final()]), dek, meta };
}

describe('PKCS#11 provider (SoftHSM2)', () => {
  it('moves 2,000 Postgres rows (AESWrapPad, RFC 5649) from rows@1 to rows@2 inside the token; independent code unwraps every DEK under rows@2 only', async () => {
    const deks = await plantRows('hsm_rows', 2000);
    const store = await rowStore('hsm_rows');
    const target = { store, provider, from: { id: 'rows', version: '1' }, to: { id: 'rows', version: '2' } };
    const keys = [...deks.keys()];
    for (let i = 0; i < keys.length; i += 500) {
      const outcomes = await rewrapBatch(target, keys.slice(i, i + 500).map((key) => ({ key })), { concurrency: 8 });
      guard.text(...outcomes);
      expect(countOutcomes(outcomes)).toEqual({ rewrapped: 500, skipped: 0, failed: 0, retry: 0 });
    }
    const { rows } = await db.pool.query<{ id: string; wrapped_dek: Buffer; kek_id: string; kek_version: string }>('SELECT id::text, wrapped_dek, kek_id, kek_version FROM hsm_rows');
    expect(rows).toHaveLength(2000);
    for (const r of rows) {
      expect(`${r.kek_id}@${r.kek_version}`).toBe('rows@2');
      expect(keyUnwrap('AESWrapPad', rows2, r.wrapped_dek).equals(deks.get(r.id)!)).toBe(true);
      expect(() => keyUnwrap('AESWrapPad', rows1, r.wrapped_dek)).toThrow();
    }
    // Invariant 2: a second run reads every row at the target and writes nothing.
    const again = await rewrapBatch(target, keys.slice(0, 200).map((key) => ({ key })), { concurrency: 8 });
    expect(countOutcomes(again)).toEqual({ rewrapped: 0, skipped: 200, failed: 0, retry: 0 });
  });

  it('a key map moves each row to the destination of its own token KEK (rows@1 -> rows@2, photos@1 -> photos@2) in one batch; independent code unwraps each under its own destination only', async () => {
    const cols = await createEnvelopeTable(db.pool, 'hsm_tenants');
    const deks = new Map<string, { dek: Buffer; to: Buffer; kek: string }>();
    for (let i = 1; i <= 20; i++) {
      const [kekId, from, to] = i % 2 === 0 ? ['rows', rows1, rows2] : ['photos', photos1, photos2];
      const dek = randomBytes(32);
      guard.secret(dek);
      deks.set(String(i), { dek, to, kek: kekId });
      await db.pool.query(`INSERT INTO hsm_tenants (id, wrapped_dek, kek_id, kek_version) VALUES ($1, $2, $3, '1')`, [i, keyWrap('AESWrapPad', from, dek), kekId]);
    }
    const store = new PgTableStore({ pool: db.pool, ...cols, wrapAlg: 'AESWrapPad' });
    const keyMap = new KekMap([
      { from: { id: 'rows', version: '1' }, to: { id: 'rows', version: '2' } },
      { from: { id: 'photos', version: '1' }, to: { id: 'photos', version: '2' } },
    ]);
    const outcomes = await rewrapBatch({ store, provider, keyMap }, [...deks.keys()].map((key) => ({ key })), { concurrency: 4 });
    guard.text(...outcomes);
    expect(countOutcomes(outcomes)).toEqual({ rewrapped: 20, skipped: 0, failed: 0, retry: 0 });
    const { rows } = await db.pool.query<{ id: string; wrapped_dek: Buffer; kek_id: string; kek_version: string }>('SELECT id::text, wrapped_dek, kek_id, kek_version FROM hsm_tenants');
    for (const r of rows) {
      const want = deks.get(r.id)!;
      expect(`${r.kek_id}@${r.kek_version}`).toBe(`${want.kek}@2`);
      expect(keyUnwrap('AESWrapPad', want.to, r.wrapped_dek).equals(want.dek), `row ${r.id}`).toBe(true);
    }
  });

  it('moves S3 objects (AESWrap, RFC 3394: the legacy S3EC envelope) from photos@1 to photos@2; independent code decrypts them under photos@2 only, user metadata kept', async () => {
    const planted = new Map<string, { payload: Buffer; dek: Buffer }>();
    for (let i = 0; i < 40; i++) {
      const payload = randomBytes(i * 37);
      planted.set(`hsm/obj-${i}`, { payload, dek: await putObject(`hsm/obj-${i}`, 'AESWrap', payload) });
    }
    const store = new S3EnvelopeStore({ client: s3, bucket: tb.bucket });
    const outcomes = await rewrapBatch({ store, provider, from: { id: 'photos', version: '1' }, to: { id: 'photos', version: '2' } }, [...planted.keys()].map((key) => ({ key })), {
      concurrency: 8,
    });
    guard.text(...outcomes);
    expect(countOutcomes(outcomes)).toEqual({ rewrapped: 40, skipped: 0, failed: 0, retry: 0 });
    for (const [key, p] of planted) {
      const got = await decryptObject(key, photos2);
      expect(got.dek.equals(p.dek)).toBe(true);
      expect(got.payload.equals(p.payload)).toBe(true);
      expect(got.meta['x-amz-wrap-alg']).toBe('AESWrap');
      expect(JSON.parse(got.meta['x-amz-matdesc']!)).toEqual({ kek: 'photos@2' });
      expect(got.meta.owner).toBe('team-a');
      await expect(decryptObject(key, photos1)).rejects.toThrow();
    }
  });

  it('an AES/GCM envelope, which SoftHSM2 cannot wrap with (no CKF_WRAP for CKM_AES_GCM), fails hsm-mechanism-unsupported and is left untouched: never done in software', async () => {
    expect(hsm.token.supports(pkcs11js.CKM_AES_GCM)).toEqual({ wrap: false, unwrap: false });
    await putObject('hsm/gcm', 'AES/GCM', Buffer.from('gcm payload'));
    const before = await s3.send(new HeadObjectCommand({ Bucket: tb.bucket, Key: 'hsm/gcm' }));
    const store = new S3EnvelopeStore({ client: s3, bucket: tb.bucket });
    const [o] = await rewrapBatch({ store, provider, from: { id: 'photos', version: '1' }, to: { id: 'photos', version: '2' } }, [{ key: 'hsm/gcm' }], { concurrency: 1 });
    expect(o).toMatchObject({ status: 'failed', reason: 'hsm-mechanism-unsupported' });
    const after = await s3.send(new HeadObjectCommand({ Bucket: tb.bucket, Key: 'hsm/gcm' }));
    expect(after.ETag).toBe(before.ETag);
    expect(after.Metadata).toEqual(before.Metadata);
  });

  it('a tampered wrapped key fails invalid-ciphertext, not an endless retry, a row under another KEK is skipped, a KEK the token lacks is unknown-kek', async () => {
    await plantRows('hsm_bad', 3);
    const store = await rowStore('hsm_bad');
    const { rows } = await db.pool.query<{ wrapped_dek: Buffer }>('SELECT wrapped_dek FROM hsm_bad WHERE id = 1');
    const tampered = Buffer.from(rows[0]!.wrapped_dek);
    tampered[20] ^= 0x01;
    await db.pool.query('UPDATE hsm_bad SET wrapped_dek = $1 WHERE id = 1', [tampered]);
    await db.pool.query("UPDATE hsm_bad SET kek_id = 'other', kek_version = '1' WHERE id = 2");
    await db.pool.query("UPDATE hsm_bad SET kek_version = '9' WHERE id = 3");
    const a = await rewrapBatch({ store, provider, from: { id: 'rows', version: '1' }, to: { id: 'rows', version: '2' } }, ['1', '2'].map((key) => ({ key })), { concurrency: 2 });
    guard.text(...a);
    expect(a[0]).toMatchObject({ status: 'failed', reason: 'invalid-ciphertext' });
    // SoftHSM2 answers CKR_GENERAL_ERROR (the standard: CKR_WRAPPED_KEY_INVALID); twice, from a live session, it is the key.
    expect((a[0] as { detail: string }).detail).toMatch(/CKR_GENERAL_ERROR twice|CKR_WRAPPED_KEY_INVALID/);
    expect(a[1]).toMatchObject({ status: 'skipped', reason: 'not-under-source' });
    const [b] = await rewrapBatch({ store, provider, from: { id: 'rows', version: '9' }, to: { id: 'rows', version: '2' } }, [{ key: '3' }], { concurrency: 1 });
    expect(b).toMatchObject({ status: 'failed', reason: 'unknown-kek' });
  });

  it('scheduled rotation: createNextVersion generates rows@3 in the token, sensitive and never extractable; a campaign to "rows" (newest) moves rows there; disable and destroy act on the token', async () => {
    const admin = new Pkcs11KekAdmin(hsm.token, new Pkcs11KekNames({}));
    const o = { rotation: 'new-version' as const, requester: 'schedule test' };
    expect(await admin.currentVersion('rows', o)).toEqual({ id: 'rows', version: '2' });
    expect(await admin.createNextVersion('rows', { id: 'rows', version: '2' }, o)).toEqual({ to: { id: 'rows', version: '3' }, nextKekId: 'rows' });
    await expect(admin.createNextVersion('rows', { id: 'rows', version: '2' }, o)).rejects.toThrow(/changed during the run/);
    expect(await admin.versions('rows')).toEqual(['1', '2', '3']);
    const attrs = await hsm.attributes('rows@3', [pkcs11js.CKA_EXTRACTABLE, pkcs11js.CKA_SENSITIVE, pkcs11js.CKA_VALUE]);
    expect(attrs.get(pkcs11js.CKA_EXTRACTABLE)).toEqual(Buffer.from([0]));
    expect(attrs.get(pkcs11js.CKA_SENSITIVE)).toEqual(Buffer.from([1]));
    expect(String(attrs.get(pkcs11js.CKA_VALUE))).toContain('CKR_ATTRIBUTE_SENSITIVE');

    const deks = await plantRows('hsm_rot', 50);
    const store = await rowStore('hsm_rot');
    const fresh = new Pkcs11KekProvider(hsm.token);
    const out = await rewrapBatch({ store, provider: fresh, from: { id: 'rows', version: '1' }, to: { id: 'rows' } }, [...deks.keys()].map((key) => ({ key })), { concurrency: 4 });
    expect(countOutcomes(out)).toEqual({ rewrapped: 50, skipped: 0, failed: 0, retry: 0 });
    const { rows } = await db.pool.query<{ wrapped_dek: Buffer; kek_version: string }>('SELECT wrapped_dek, kek_version FROM hsm_rot');
    expect(new Set(rows.map((r) => r.kek_version))).toEqual(new Set(['3']));
    // rows@3 never leaves the token: the token itself proves each DEK unwraps under it.
    const dek = { wrapAlg: 'AESWrapPad' as const, cekAlg: CEK, wrapped: rows[0]!.wrapped_dek, matdesc: {} };
    expect(await admin.unwrapsUnder(dek, { id: 'rows', version: '3' })).toEqual({ ok: true });
    expect(await admin.unwrapsUnder(dek, { id: 'rows', version: '2' })).toMatchObject({ ok: false });
    // The retirement gate's verifier: the KEK the KEK columns name must unwrap it, in the token.
    const verifier = admin.verifier();
    const named = { ...dek, kek: { id: 'rows', version: '3' } };
    expect(await verifier.verifyUnwrap(named, { id: 'rows', version: '1' })).toEqual({ ok: true, kek: 'rows@3' });
    expect(await verifier.verifyUnwrap(named, { id: 'rows', version: '3' })).toMatchObject({ ok: false, underRetiring: true });
    expect(await verifier.verifyUnwrap({ ...dek, kek: { id: 'rows', version: '2' } }, { id: 'rows', version: '1' })).toMatchObject({ ok: false, underRetiring: false });

    await admin.disable({ id: 'rows', version: '3' });
    const [blocked] = await rewrapBatch({ store, provider: fresh, from: { id: 'rows', version: '3' }, to: { id: 'rows', version: '2' } }, [{ key: '1' }], { concurrency: 1 });
    expect(blocked).toMatchObject({ status: 'failed', reason: 'kek-disabled' });
    await admin.destroy({ id: 'rows', version: '3' });
    expect(await admin.versions('rows')).toEqual(['1', '2']);
  });

  it('token errors are transient or permanent by CKR code; a wrong PIN or token label is a ConfigError naming what to fix', async () => {
    const err = (code: number) => classifyPkcs11Error(Object.assign(new Error('x'), { code }), 'C_WrapKey');
    for (const c of [CKR.DEVICE_ERROR, CKR.SESSION_HANDLE_INVALID, CKR.DEVICE_REMOVED, CKR.USER_NOT_LOGGED_IN, CKR.KEY_HANDLE_INVALID]) {
      expect(err(c)).toMatchObject({ reason: 'provider-unavailable', transient: true });
    }
    expect(err(CKR.WRAPPED_KEY_INVALID)).toMatchObject({ reason: 'invalid-ciphertext', transient: false });
    expect(err(CKR.KEY_FUNCTION_NOT_PERMITTED)).toMatchObject({ reason: 'kek-disabled', transient: false });
    expect(err(CKR.MECHANISM_INVALID)).toMatchObject({ reason: 'hsm-mechanism-unsupported', transient: false });
    expect(err(0x999)).toMatchObject({ reason: 'provider-rejected', transient: false });
    expect(err(0x999)).toBeInstanceOf(ItemError);
    expect(err(CKR.PIN_INCORRECT)).toBeInstanceOf(ConfigError);

    // The login state is per process and token: a token nobody in this process logged in to.
    const wrongPin = new Pkcs11Token({ module: SOFTHSM_MODULE, tokenLabel: 'hsm-spare', pin: '000000', maxSessions: 2 });
    try {
      expect(() => wrongPin.login()).toThrow(/CKR_PIN_INCORRECT/);
    } finally {
      wrongPin.close();
    }
    expect(() => new Pkcs11Token({ module: SOFTHSM_MODULE, tokenLabel: 'no-such-token', pin: hsm.pin, maxSessions: 2 })).toThrow(/no token labelled "no-such-token"/);
    expect(() => new Pkcs11Token({ module: '/nonexistent/lib.so', tokenLabel: 'x', pin: '1', maxSessions: 2 })).toThrow(ConfigError);
  });

  it('the campaign spec validates a pkcs11 provider at the edge: one of slot and tokenLabel, a PIN variable name (never a PIN), no canary', () => {
    const base = { name: 'h', sources: [{ type: 's3', bucket: 'b' }], from: 'photos@1', to: 'photos@2' };
    const spec = parseCampaignSpec({ ...base, provider: { ...hsm.providerSpec, labels: { 'photos@1': 'legacy-photos' } } });
    expect(spec.provider).toEqual({ ...hsm.providerSpec, labels: { 'photos@1': 'legacy-photos' } });
    expect(() => parseCampaignSpec({ ...base, provider: { type: 'pkcs11', module: SOFTHSM_MODULE, pinEnv: 'P' } })).toThrow(/exactly one of "slot"/);
    expect(() => parseCampaignSpec({ ...base, provider: { type: 'pkcs11', module: SOFTHSM_MODULE, slot: 1, tokenLabel: 'x', pinEnv: 'P' } })).toThrow(/exactly one of "slot"/);
    expect(() => parseCampaignSpec({ ...base, provider: { type: 'pkcs11', module: SOFTHSM_MODULE, tokenLabel: 'x', pinEnv: '1234 5678' } })).toThrow(/never the PIN itself/);
    expect(() => parseCampaignSpec({ ...base, provider: { type: 'pkcs11', module: 'libsofthsm2.so', tokenLabel: 'x', pinEnv: 'P' } })).toThrow(/absolute path/);
    expect(() => parseCampaignSpec({ ...base, provider: { ...hsm.providerSpec, pin: '1234' } })).toThrow(/pin: unknown field/);
    expect(() => parseCampaignSpec({ ...base, provider: hsm.providerSpec, options: { canaryFraction: 0.01 } })).toThrow(/canaryFraction/);
  });

  it('no key bytes (KEKs, DEKs) in any outcome or error text of this file (invariant 5)', () => {
    expect(guard.findLeaks()).toEqual([]);
  });
});
