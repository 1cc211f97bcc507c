/**
 * KmsKekProvider against the local KMS server over real HTTP with the real SDK: the rewrap
 * outcome, and each KMS failure mapped to the reason code the pipeline acts on.
 * Invariant 5: every failure below is checked (in `failure`) for the plaintext DEKs of this file.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CreateKeyCommand,
  DecryptCommand,
  DisableKeyCommand,
  EnableKeyCommand,
  GenerateDataKeyCommand,
  RotateKeyOnDemandCommand,
  type KMSClient,
} from '@aws-sdk/client-kms';
import { startKmsServer, type KmsServer } from '../dev/kms-server/server.ts';
import { createKmsClient } from '../src/kek/kms-client.ts';
import { kmsEncryptionContext, KmsKekProvider } from '../src/kek/kms-kek-provider.ts';
import { NotUnderSourceError } from '../src/kek/kek-provider.ts';
import type { KekSelector, WrappedDek } from '../src/core/kek-ref.ts';
import { ItemError } from '../src/core/errors.ts';

const REGION = 'us-east-1';
const CREDENTIALS = { accessKeyId: 'AKIDLOCAL', secretAccessKey: 'local-secret' };

let server: KmsServer;
let kms: KMSClient;
let provider: KmsKekProvider;
/** Hex and base64 of every plaintext DEK this file generated: no error may contain any of them. */
const plaintextForms: string[] = [];

const MATDESC = { 'kms_cmk_id': 'placeholder', tenant: 't-1' };

async function newKey(): Promise<{ id: string; material: string }> {
  const m = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!;
  return { id: m.KeyId!, material: m.CurrentKeyMaterialId! };
}

/** A DEK as the S3 Encryption Client V2 (kms+context) would have made it under `keyId`. */
async function newDek(keyId: string, matdesc: Record<string, string> = { ...MATDESC, kms_cmk_id: keyId }): Promise<{ dek: WrappedDek; plaintext: Buffer }> {
  const dek: WrappedDek = { wrapAlg: 'kms+context', cekAlg: 'AES/GCM/NoPadding', wrapped: Buffer.alloc(0), matdesc };
  const out = await kms.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: kmsEncryptionContext(dek) }));
  const plaintext = Buffer.from(out.Plaintext!);
  plaintextForms.push(plaintext.toString('hex'), plaintext.toString('base64'));
  return { dek: { ...dek, wrapped: Buffer.from(out.CiphertextBlob!) }, plaintext };
}

/** Invariant 5: no message, stack or serialisation of the error or its causes carries a plaintext DEK. */
function expectNoPlaintextDek(err: unknown): void {
  for (let e = err; e instanceof Error; e = e.cause) {
    const text = `${e.message}\n${e.stack ?? ''}\n${JSON.stringify(e)}`;
    for (const secret of plaintextForms) expect(text.includes(secret), `plaintext DEK in ${e.name}: ${e.message}`).toBe(false);
  }
}

/** Runs a rewrap that must fail; every failure is checked for plaintext DEK bytes. */
async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    expect(plaintextForms.length).toBeGreaterThan(0);
    expectNoPlaintextDek(err);
    return err as Error;
  }
  throw new Error('expected rewrap to fail');
}

function expectItemError(err: Error, reason: string, isTransient: boolean): void {
  expect(err, err.message).toBeInstanceOf(ItemError);
  expect((err as ItemError).reason).toBe(reason);
  expect((err as ItemError).transient).toBe(isTransient);
  expect(err.cause).toBeDefined();
}

beforeAll(async () => {
  server = await startKmsServer({ region: REGION });
  kms = createKmsClient({ endpoint: server.url, region: REGION, credentials: CREDENTIALS, maxAttempts: 1 });
  provider = new KmsKekProvider(kms);
});

afterAll(async () => {
  kms?.destroy();
  await server?.close();
});

describe('KmsKekProvider.rewrap', () => {
  it('moves a DEK to the target KEK under the same context, reporting both key materials and the request id', async () => {
    const a = await newKey();
    const b = await newKey();
    const { dek, plaintext } = await newDek(a.id);
    const result = await provider.rewrap(dek, { id: a.id }, { id: b.id });
    expect(result).toMatchObject({
      wrapAlg: 'kms+context',
      matdesc: dek.matdesc,
      from: { id: a.id, materialId: a.material },
      to: { id: b.id, materialId: b.material },
    });
    expect(result.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(result.wrapped.equals(dek.wrapped)).toBe(false);
    // The new wrapped key opens under the target KEK only, with the S3EC context, to the same DEK.
    const opened = await kms.send(new DecryptCommand({ CiphertextBlob: result.wrapped, KeyId: b.id, EncryptionContext: kmsEncryptionContext(dek) }));
    expect(Buffer.from(opened.Plaintext!).equals(plaintext)).toBe(true);
  });

  it('accepts a matdesc that already carries aws:x-amz-cek-alg, as the official clients store it', async () => {
    const a = await newKey();
    const b = await newKey();
    const { dek } = await newDek(a.id, { tenant: 't-2', 'aws:x-amz-cek-alg': 'AES/GCM/NoPadding' });
    const result = await provider.rewrap(dek, { id: a.id }, { id: b.id });
    expect(result.matdesc).toEqual({ tenant: 't-2', 'aws:x-amz-cek-alg': 'AES/GCM/NoPadding' });
  });

  it('a DEK under another KEK is NotUnderSourceError (KMS IncorrectKeyException), not an item failure', async () => {
    const a = await newKey();
    const other = await newKey();
    const { dek } = await newDek(other.id);
    const err = await failure(provider.rewrap(dek, { id: a.id }, { id: other.id }));
    expect(err).toBeInstanceOf(NotUnderSourceError);
    expect(err.message).toContain(a.id);
    expect(err.message).toContain('IncorrectKeyException');
    expect((err.cause as Error).name).toBe('IncorrectKeyException');
  });

  it('with from.version set, a DEK under another key material of the source is NotUnderSourceError', async () => {
    const a = await newKey();
    const b = await newKey();
    const { dek } = await newDek(a.id);
    await kms.send(new RotateKeyOnDemandCommand({ KeyId: a.id }));
    const { dek: newer } = await newDek(a.id);
    const old: KekSelector = { id: a.id, version: a.material };

    const ok = await provider.rewrap(dek, old, { id: b.id });
    expect(ok.from).toEqual({ id: a.id, version: a.material, materialId: a.material });
    const err = await failure(provider.rewrap(newer, old, { id: b.id }));
    expect(err).toBeInstanceOf(NotUnderSourceError);
    expect((err as NotUnderSourceError).actual?.materialId).toMatch(/^[0-9a-f]{64}$/);
    expect((err as NotUnderSourceError).actual?.materialId).not.toBe(a.material);
  });

  it('an unknown source or target KEK is permanent unknown-kek, naming the KEK and the KMS error', async () => {
    const a = await newKey();
    const { dek } = await newDek(a.id);
    const missing = randomUUID();
    const toMissing = await failure(provider.rewrap(dek, { id: a.id }, { id: missing }));
    expectItemError(toMissing, 'unknown-kek', false);
    expect(toMissing.message).toContain(missing);
    expect(toMissing.message).toContain('NotFoundException');
    expectItemError(await failure(provider.rewrap(dek, { id: `alias/${missing}` }, { id: a.id })), 'unknown-kek', false);
  });

  it('a disabled source or target KEK is permanent kek-disabled', async () => {
    const a = await newKey();
    const b = await newKey();
    const { dek } = await newDek(a.id);
    await kms.send(new DisableKeyCommand({ KeyId: b.id }));
    expectItemError(await failure(provider.rewrap(dek, { id: a.id }, { id: b.id })), 'kek-disabled', false);
    await kms.send(new EnableKeyCommand({ KeyId: b.id }));
    await kms.send(new DisableKeyCommand({ KeyId: a.id }));
    const err = await failure(provider.rewrap(dek, { id: a.id }, { id: b.id }));
    expectItemError(err, 'kek-disabled', false);
    expect(err.message).toContain('DisabledException');
  });

  it('a changed matdesc (encryption context) or a corrupted wrapped key is permanent invalid-ciphertext', async () => {
    const a = await newKey();
    const b = await newKey();
    const { dek } = await newDek(a.id);
    expectItemError(await failure(provider.rewrap({ ...dek, matdesc: { ...dek.matdesc, tenant: 'other' } }, { id: a.id }, { id: b.id })), 'invalid-ciphertext', false);
    expectItemError(await failure(provider.rewrap({ ...dek, cekAlg: 'AES/CBC/PKCS5Padding' }, { id: a.id }, { id: b.id })), 'invalid-ciphertext', false);
    const corrupt = Buffer.from(dek.wrapped);
    corrupt[corrupt.length - 3]! ^= 0xff;
    expectItemError(await failure(provider.rewrap({ ...dek, wrapped: corrupt }, { id: a.id }, { id: b.id })), 'invalid-ciphertext', false);
  });

  it('a key policy refusal is permanent access-denied', async () => {
    const a = await newKey();
    const b = await newKey();
    const { dek } = await newDek(a.id);
    server.setFaults({ deniedKeyIds: [b.id] });
    try {
      const err = await failure(provider.rewrap(dek, { id: a.id }, { id: b.id }));
      expectItemError(err, 'access-denied', false);
      expect(err.message).toContain('AccessDeniedException');
    } finally {
      server.setFaults({});
    }
  });

  it('throttling is transient throttled; an outage (500 or 503) and no answer at all are transient provider-unavailable', async () => {
    const a = await newKey();
    const b = await newKey();
    const { dek } = await newDek(a.id);
    try {
      server.setFaults({ throttleRatio: 1 });
      expectItemError(await failure(provider.rewrap(dek, { id: a.id }, { id: b.id })), 'throttled', true);
      server.setFaults({ outageForMs: 60_000 });
      const internal = await failure(provider.rewrap(dek, { id: a.id }, { id: b.id }));
      expectItemError(internal, 'provider-unavailable', true);
      expect(internal.message).toContain('KMSInternalException');
      server.setFaults({ outageForMs: 60_000, outageStatus: 503 });
      expectItemError(await failure(provider.rewrap(dek, { id: a.id }, { id: b.id })), 'provider-unavailable', true);
    } finally {
      server.setFaults({});
    }
    // A KMS endpoint where nothing listens any more.
    const gone = await startKmsServer();
    const goneUrl = gone.url;
    await gone.close();
    const deadClient = createKmsClient({ endpoint: goneUrl, region: REGION, credentials: CREDENTIALS, maxAttempts: 1 });
    try {
      const err = await failure(new KmsKekProvider(deadClient).rewrap(dek, { id: a.id }, { id: b.id }));
      expectItemError(err, 'provider-unavailable', true);
      expect(err.message).toContain(a.id);
    } finally {
      deadClient.destroy();
    }
    // and after the faults are cleared the same DEK rewraps
    await provider.rewrap(dek, { id: a.id }, { id: b.id });
  });

  it('an aborted signal ends the call promptly with the abort, not an item error', async () => {
    const a = await newKey();
    const b = await newKey();
    const { dek } = await newDek(a.id);
    server.setFaults({ latencyMs: 5_000 });
    try {
      const controller = new AbortController();
      const t0 = performance.now();
      const pending = failure(provider.rewrap(dek, { id: a.id }, { id: b.id }, controller.signal));
      setTimeout(() => controller.abort(), 50);
      const err = await pending;
      expect(performance.now() - t0).toBeLessThan(2_000);
      expect(err).not.toBeInstanceOf(ItemError);
      expect(err.name).toBe('AbortError');
    } finally {
      server.setFaults({});
    }
  });

  it('a request KMS rejects with a 4xx we do not know (ValidationException) is the item\'s permanent provider-rejected, naming the error (issue 13, point 6)', async () => {
    const a = await newKey();
    const { dek } = await newDek(a.id);
    const err = await failure(provider.rewrap(dek, { id: a.id }, { id: '' }));
    expectItemError(err, 'provider-rejected', false);
    expect(err.message).toContain('ValidationException (HTTP 400)');
    expect((err.cause as Error).name).toBe('ValidationException');
  });

  it('refuses a DEK that is not kms+context as permanent unsupported-wrap-alg', async () => {
    const dek: WrappedDek = { wrapAlg: 'AES/GCM', cekAlg: 'AES/GCM/NoPadding', wrapped: Buffer.alloc(60, 1), matdesc: {} };
    const err = await provider.rewrap(dek, { id: 'a' }, { id: 'b' }).catch((e: unknown) => e as ItemError);
    expect(err).toBeInstanceOf(ItemError);
    expect(err).toMatchObject({ reason: 'unsupported-wrap-alg', transient: false });
  });
});

describe('KmsKekProvider.identify', () => {
  it('is undefined for an opaque KMS blob, and the store-reported KEK when there is one', () => {
    const dek: WrappedDek = { wrapAlg: 'kms+context', cekAlg: 'AES/GCM/NoPadding', wrapped: Buffer.alloc(120), matdesc: {} };
    expect(provider.identify(dek)).toBeUndefined();
    expect(provider.identify({ ...dek, kek: { id: 'k1', materialId: 'm1' } })).toEqual({ id: 'k1', materialId: 'm1' });
  });
});
