import { describe, expect, it } from 'vitest';
import { classify } from '../../src/rewrap/classify.ts';
import { matchesSelector } from '../../src/kek/kek-selector.ts';
import { envelope, fakeProvider, kek } from './fakes.ts';

const MATERIAL_A = 'a'.repeat(64);

describe('classify: what an item needs before any provider call', () => {
  const local = fakeProvider('local');
  const kms = fakeProvider('kms');

  it('a keyring DEK under the source is rewrapped, naming the KEK it is under', () => {
    expect(classify(envelope({ under: 'k@1' }), local, kek('k@1'), kek('k@2'))).toEqual({ kind: 'rewrap', current: kek('k@1') });
  });

  it('a DEK already under the target is skipped (invariant 2: a re-run skips)', () => {
    expect(classify(envelope({ under: 'k@2' }), local, kek('k@1'), kek('k@2'))).toEqual({ kind: 'skip', reason: 'already-at-target', current: kek('k@2') });
  });

  it('a keyring DEK under another KEK is out of scope; one no keyring KEK names is unknown-kek', () => {
    expect(classify(envelope({ under: 'other@1' }), local, kek('k@1'), kek('k@2'))).toMatchObject({ kind: 'skip', reason: 'not-under-source' });
    expect(classify(envelope({}), local, kek('k@1'), kek('k@2'))).toEqual({ kind: 'unknown-kek' });
  });

  it('a KMS blob is never under a keyring KEK, nor a raw AES-wrapped key under a KMS key', () => {
    expect(classify(envelope({ wrapAlg: 'kms+context' }), local, kek('k@1'), kek('k@2'))).toMatchObject({ kind: 'skip', reason: 'not-under-source' });
    expect(classify(envelope({ under: 'k@1' }), kms, kek('key-1'), kek('key-2'))).toMatchObject({ kind: 'skip', reason: 'not-under-source' });
  });

  it('KMS: a stamp at the target skips; a stamp elsewhere is only a hint, so KMS is asked (it refuses a wrong source)', () => {
    const atTarget = envelope({ wrapAlg: 'kms+context', stamp: kek('key-2') });
    expect(classify(atTarget, kms, kek('key-1'), kek('key-2'))).toEqual({ kind: 'skip', reason: 'already-at-target', current: { id: 'key-2', wrappedDigest: 'x' } });
    const elsewhere = envelope({ wrapAlg: 'kms+context', stamp: kek('key-9') });
    expect(classify(elsewhere, kms, kek('key-1'), kek('key-2'))).toMatchObject({ kind: 'rewrap' });
  });

  it('KMS material drain: an item of the source key with no recorded material is rewrapped with materialUnknown', () => {
    const env = envelope({ wrapAlg: 'kms+context', kek: { id: 'key-1' } });
    expect(classify(env, kms, { id: 'key-1', version: MATERIAL_A }, { id: 'key-1' })).toEqual({ kind: 'rewrap', current: { id: 'key-1' }, materialUnknown: true });
  });

  it('matchesSelector: same id, and the version or the KMS material id when the selector names one', () => {
    expect(matchesSelector({ id: 'k', version: '1' }, { id: 'k' })).toBe(true);
    expect(matchesSelector({ id: 'k', version: '1' }, { id: 'k', version: '1' })).toBe(true);
    expect(matchesSelector({ id: 'k', materialId: MATERIAL_A }, { id: 'k', version: MATERIAL_A })).toBe(true);
    expect(matchesSelector({ id: 'k', version: '2' }, { id: 'k', version: '1' })).toBe(false);
    expect(matchesSelector({ id: 'j', version: '1' }, { id: 'k' })).toBe(false);
  });
});
