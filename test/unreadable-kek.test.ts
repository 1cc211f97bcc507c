/**
 * Which KEK an envelope rewrap cannot rewrap still names (invariant 7): a keyring KEK by its
 * matdesc, a KMS key by a V1 matdesc's kms_cmk_id (in any form of the same key), a row's KEK
 * columns; "cannot tell" (undefined) for an empty matdesc, an unknown one, or a KMS alias.
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { kekOfUnreadable } from '../src/rewrap/unreadable-kek.ts';
import { LocalKeyringProvider } from '../src/kek/local-keyring-provider.ts';

const keyring = new LocalKeyringProvider([
  { id: 'k', version: '1', material: randomBytes(32), matdesc: { kek: 'k@1' }, state: 'enabled' },
  { id: 'o', version: '1', material: randomBytes(32), matdesc: { kek: 'o@1' }, state: 'enabled' },
]);
const kms = { kind: 'kms' as const, identify: () => undefined };
const arn = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const keyId = '1234abcd-12ab-34cd-56ef-1234567890ab';

describe('the KEK an unreadable envelope names (invariant 7)', () => {
  it('keyring: the KEK whose matdesc it carries; nothing decidable for {} or an unknown matdesc', () => {
    const k1 = { id: 'k', version: '1' };
    expect(kekOfUnreadable({ matdesc: { kek: 'k@1' } }, keyring, k1)).toEqual({ id: 'k', version: '1' });
    expect(kekOfUnreadable({ matdesc: { kek: 'o@1' } }, keyring, k1)).toEqual({ id: 'o', version: '1' });
    expect(kekOfUnreadable({ matdesc: {} }, keyring, k1)).toBeUndefined();
    expect(kekOfUnreadable({ matdesc: { kek: 'nobody' } }, keyring, k1)).toBeUndefined();
    expect(kekOfUnreadable(undefined, keyring, k1)).toBeUndefined();
    // A KMS-wrapped V1 object is under a KMS key, never under a keyring KEK.
    expect(kekOfUnreadable({ matdesc: { kms_cmk_id: arn } }, keyring, k1)).toEqual({ id: arn });
  });

  it('KMS: kms_cmk_id as the same key in another form is recorded as the drained key; another key as itself; an alias cannot be told', () => {
    expect(kekOfUnreadable({ matdesc: { kms_cmk_id: keyId } }, kms, { id: arn })).toEqual({ id: arn });
    expect(kekOfUnreadable({ matdesc: { kms_cmk_id: arn } }, kms, { id: keyId, version: 'a'.repeat(64) })).toEqual({ id: keyId });
    expect(kekOfUnreadable({ matdesc: { kms_cmk_id: 'arn:aws:kms:eu-west-1:111122223333:key/other' } }, kms, { id: arn })).toEqual({ id: 'arn:aws:kms:eu-west-1:111122223333:key/other' });
    expect(kekOfUnreadable({ matdesc: { kms_cmk_id: 'alias/orders' } }, kms, { id: arn })).toBeUndefined();
    expect(kekOfUnreadable({ matdesc: { 'aws:x-amz-cek-alg': 'AES/GCM/NoPadding' } }, kms, { id: arn })).toBeUndefined();
  });

  it('rows: the KEK columns, whatever the provider', () => {
    expect(kekOfUnreadable({ kek: { id: 'orders', version: '3' } }, kms, { id: arn })).toEqual({ id: 'orders', version: '3' });
  });
});
