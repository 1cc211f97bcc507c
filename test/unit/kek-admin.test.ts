import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KMSClient } from '@aws-sdk/client-kms';
import { ConfigError } from '../../src/core/errors.ts';
import { gcmWrap } from '../../src/kek/aes-gcm-wrap.ts';
import type { WrappedDek } from '../../src/core/kek-ref.ts';
import { KmsKekAdmin } from '../../src/kek/kms-kek-admin.ts';
import { LocalKeyringAdmin } from '../../src/kek/local-keyring-admin.ts';

const CEK = 'AES/GCM/NoPadding';
const LIFECYCLE = { rotation: 'new-version' as const, requester: 'schedule nightly' };

describe('KEK admin port, local keyring adapter', () => {
  let dir: string;
  let file: string;
  const material = { '1': randomBytes(32), '2': randomBytes(32) };
  const dek = (version: '1' | '2', wrapped?: Buffer): WrappedDek => ({
    wrapAlg: 'AES/GCM',
    cekAlg: CEK,
    wrapped: wrapped ?? gcmWrap(material[version], randomBytes(32), CEK),
    matdesc: { kek: `k@${version}` },
  });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'rewrap-unit-'));
    file = join(dir, 'keyring.json');
    const keks = Object.entries(material).map(([version, m]) => ({ id: 'k', version, material: m.toString('base64'), matdesc: { kek: `k@${version}` }, state: 'enabled' }));
    writeFileSync(file, JSON.stringify({ keks }), { mode: 0o600 });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('current version is the newest; the next one is appended with fresh material', async () => {
    const admin = new LocalKeyringAdmin(file);
    const from = await admin.currentVersion('k', LIFECYCLE);
    expect(from).toEqual({ id: 'k', version: '2' });
    expect(await admin.createNextVersion('k', from, LIFECYCLE)).toEqual({ to: { id: 'k', version: '3' }, nextKekId: 'k' });
    expect(await admin.currentVersion('k', LIFECYCLE)).toEqual({ id: 'k', version: '3' });
    await expect(admin.currentVersion('nope', LIFECYCLE)).rejects.toThrow(`schedule nightly: keyring file ${file} has no KEK nope`);
  });

  it('verifyUnwrap: ok under another KEK, refused under the retiring one, and a corrupt DEK names no key bytes (invariant 5)', async () => {
    const v = new LocalKeyringAdmin(file).verifier();
    try {
      expect(await v.verifyUnwrap(dek('2'), { id: 'k', version: '1' })).toEqual({ ok: true, kek: 'k@2' });
      expect(await v.verifyUnwrap(dek('1'), { id: 'k', version: '1' })).toEqual({ ok: false, underRetiring: true, problem: 'still under k@1' });
      const corrupt = await v.verifyUnwrap(dek('2', randomBytes(60)), { id: 'k', version: '1' });
      expect(corrupt).toEqual({ ok: false, underRetiring: false, problem: 'does not authenticate under k@2 (corrupt)' });
      expect(await v.verifyUnwrap({ ...dek('2'), matdesc: { kek: 'x@1' } }, { id: 'k', version: '1' })).toMatchObject({ ok: false, problem: 'no keyring KEK matches its matdesc' });
    } finally {
      v.close();
    }
  });

  it('retires one version at a time: disable sets its state, destroy removes it', async () => {
    const admin = new LocalKeyringAdmin(file);
    expect(() => admin.assertRetirable({ id: 'k' })).toThrow(ConfigError);
    await admin.disable({ id: 'k', version: '1' });
    const v = admin.verifier();
    expect(await v.verifyUnwrap(dek('1'), { id: 'k', version: '2' })).toEqual({ ok: false, underRetiring: false, problem: 'under k@1, which is disabled' });
    v.close();
    await admin.destroy({ id: 'k', version: '1' });
    expect(JSON.parse(readFileSync(file, 'utf8')).keks.map((e: { version: string }) => e.version)).toEqual(['2']);
  });
});

describe('KEK admin port, KMS adapter', () => {
  const kms = (answer: (cmd: { constructor: { name: string }; input: Record<string, unknown> }) => unknown) => {
    const sent: string[] = [];
    const client = {
      async send(cmd: { constructor: { name: string }; input: Record<string, unknown> }) {
        sent.push(cmd.constructor.name);
        return answer(cmd);
      },
    };
    return { client: client as unknown as KMSClient, sent };
  };

  it('current version: the key material id for rotate-on-demand, the key alone for new-key rotation', async () => {
    const f = kms(() => ({ KeyMetadata: { CurrentKeyMaterialId: 'm'.repeat(64) } }));
    const admin = new KmsKekAdmin(f.client);
    expect(await admin.currentVersion('key-1', LIFECYCLE)).toEqual({ id: 'key-1', version: 'm'.repeat(64) });
    expect(await admin.currentVersion('key-1', { ...LIFECYCLE, rotation: 'new-key' })).toEqual({ id: 'key-1' });
    expect(f.sent).toEqual(['DescribeKeyCommand']);
  });

  it('next version: RotateKeyOnDemand, or CreateKey whose ARN the schedule follows', async () => {
    const f = kms((cmd) => (cmd.constructor.name === 'CreateKeyCommand' ? { KeyMetadata: { Arn: 'arn:aws:kms:us-east-1:1:key/new' } } : {}));
    const admin = new KmsKekAdmin(f.client);
    expect(await admin.createNextVersion('key-1', { id: 'key-1' }, LIFECYCLE)).toEqual({ to: { id: 'key-1' }, nextKekId: 'key-1' });
    expect(await admin.createNextVersion('key-1', { id: 'key-1' }, { ...LIFECYCLE, rotation: 'new-key' })).toEqual({
      to: { id: 'arn:aws:kms:us-east-1:1:key/new' },
      nextKekId: 'arn:aws:kms:us-east-1:1:key/new',
    });
    expect(f.sent).toEqual(['RotateKeyOnDemandCommand', 'CreateKeyCommand']);
  });

  it('whole keys only, never deleted: one key material or --delete is refused before any call', async () => {
    const f = kms(() => ({}));
    const admin = new KmsKekAdmin(f.client);
    expect(() => admin.assertRetirable({ id: 'key-1', version: 'm' }, { destroy: false })).toThrow(/KMS cannot disable one key material/);
    expect(() => admin.assertRetirable({ id: 'key-1' }, { destroy: true })).toThrow(/--delete: not supported for KMS keys/);
    await expect(admin.destroy({ id: 'key-1' })).rejects.toThrow(ConfigError);
    await admin.disable({ id: 'key-1' });
    expect(f.sent).toEqual(['DisableKeyCommand']);
  });

  it('verifyUnwrap: zeroes the plaintext, tells the retiring key apart by ARN, reports KMS errors by name only', async () => {
    const plaintext = Buffer.from('0123456789abcdef0123456789abcdef');
    const f = kms((cmd) => ({ Plaintext: plaintext, KeyId: cmd.input.KeyId === 'key-2' ? 'arn:aws:kms:us-east-1:1:key/key-2' : 'arn:aws:kms:us-east-1:1:key/key-1' }));
    const v = new KmsKekAdmin(f.client).verifier();
    const kmsDek: WrappedDek = { wrapAlg: 'kms+context', cekAlg: CEK, wrapped: Buffer.from('blob'), matdesc: {} };
    expect(await v.verifyUnwrap(kmsDek, { id: 'key-1' }, 'key-2')).toEqual({ ok: true, kek: 'arn:aws:kms:us-east-1:1:key/key-2' });
    expect(plaintext.every((b) => b === 0)).toBe(true);
    expect(await v.verifyUnwrap(kmsDek, { id: 'key-1' })).toEqual({ ok: false, underRetiring: true, problem: 'still under key-1' });
    const failing = new KmsKekAdmin(
      kms(() => {
        throw Object.assign(new Error('blob bytes would be here'), { name: 'InvalidCiphertextException', $metadata: { requestId: 'r-1' } });
      }).client,
    ).verifier();
    expect(await failing.verifyUnwrap(kmsDek, { id: 'key-1' })).toEqual({ ok: false, underRetiring: false, problem: 'KMS Decrypt failed: InvalidCiphertextException (request r-1)' });
  });
});
