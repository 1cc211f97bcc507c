import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { LocalKeyringProvider } from '../src/kek/local-keyring-provider.ts';
import { parseKeyring } from '../src/kek/keyring-file.ts';
import { NotUnderSourceError } from '../src/kek/kek-provider.ts';
import type { WrappedDek } from '../src/core/kek-ref.ts';
import { ItemError } from '../src/core/errors.ts';
import { aesUnwrap, aesWrap, CEK } from '../dev/reference/s3ec-client.ts';

const m1 = randomBytes(32);
const m2 = randomBytes(32);
const other = randomBytes(32);
const ring = () =>
  new LocalKeyringProvider(
    parseKeyring({
      keks: [
        { id: 'orders', version: '1', material: m1.toString('base64') },
        { id: 'orders', version: '2', material: m2.toString('base64') },
        { id: 'other', version: '1', material: other.toString('base64'), state: 'disabled' },
      ],
    }),
  );
const dekUnder = (material: Buffer, matdesc: Record<string, string>, dek = randomBytes(32)): { dek: Buffer; wrapped: WrappedDek } => ({
  dek,
  wrapped: { wrapAlg: 'AES/GCM', cekAlg: CEK, wrapped: aesWrap(material, dek), matdesc },
});

describe('LocalKeyringProvider', () => {
  it('moves a DEK from orders@1 to orders@2: the new wrapped key unwraps to the same DEK under orders@2 only', async () => {
    const { dek, wrapped } = dekUnder(m1, { kek: 'orders@1' });
    const r = await ring().rewrap(wrapped, { id: 'orders', version: '1' }, { id: 'orders' });
    expect(r.to).toEqual({ id: 'orders', version: '2' });
    expect(r.matdesc).toEqual({ kek: 'orders@2' });
    expect(aesUnwrap(m2, r.wrapped).equals(dek)).toBe(true);
    expect(() => aesUnwrap(m1, r.wrapped)).toThrow();
  });

  it('identifies the KEK from the matdesc, or from the KEK columns a row store reports', () => {
    const p = ring();
    expect(p.identify(dekUnder(m1, { kek: 'orders@2' }).wrapped)).toEqual({ id: 'orders', version: '2' });
    expect(p.identify({ ...dekUnder(m1, {}).wrapped, kek: { id: 'orders', version: '1' } })).toEqual({ id: 'orders', version: '1' });
    expect(p.identify(dekUnder(m1, { kek: 'nope' }).wrapped)).toBeUndefined();
  });

  it('refuses an item under another KEK as not under the source', async () => {
    const { wrapped } = dekUnder(m2, { kek: 'orders@2' });
    await expect(ring().rewrap(wrapped, { id: 'orders', version: '1' }, { id: 'orders', version: '2' })).rejects.toBeInstanceOf(NotUnderSourceError);
  });

  it.each([
    ['a tampered wrapped key', () => { const d = dekUnder(m1, { kek: 'orders@1' }).wrapped; d.wrapped[20] ^= 1; return d; }, 'invalid-ciphertext'],
    ['a matdesc no KEK has', () => dekUnder(m1, { kek: 'orders@9' }).wrapped, 'unknown-kek'],
    ['a disabled source KEK', () => dekUnder(other, { kek: 'other@1' }).wrapped, 'kek-disabled'],
  ])('fails %s with a reason code and no key bytes in the message', async (_n, make, reason) => {
    const d = make();
    const from = d.matdesc.kek === 'other@1' ? { id: 'other' } : { id: 'orders' };
    const err = await ring().rewrap(d, from, { id: 'orders', version: '2' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ItemError);
    expect((err as ItemError).reason).toBe(reason);
    for (const secret of [m1, m2, other]) {
      expect((err as Error).message).not.toContain(secret.toString('hex').slice(0, 16));
      expect((err as Error).message).not.toContain(secret.toString('base64').slice(0, 16));
    }
  });

  it('refuses a target KEK that is decrypt-only', async () => {
    const p = new LocalKeyringProvider(
      parseKeyring({ keks: [{ id: 'a', version: '1', material: m1.toString('base64') }, { id: 'b', version: '1', material: m2.toString('base64'), state: 'decrypt-only' }] }),
    );
    const err = (await p.rewrap(dekUnder(m1, { kek: "a@1" }).wrapped, { id: "a" }, { id: "b" }).catch((e: unknown) => e)) as ItemError;
    expect(err.reason).toBe('kek-disabled');
  });

  it.each([
    [{}, 'expected an object with a "keks" array'],
    [{ keks: [{ id: 'a', version: '1', material: 'AAAA' }] }, 'keks[0] (a@1).material: expected base64 of exactly 32 bytes'],
    [{ keks: [{ id: '', version: '1' }] }, 'keks[0].id: expected a non-empty string'],
    [{ keks: [{ id: 'a', version: '1', material: m1.toString('base64'), state: 'on' }] }, 'keks[0] (a@1).state: expected one of enabled, decrypt-only, disabled'],
    [{ keks: [{ id: 'a', version: '1', material: m1.toString('base64') }, { id: 'a', version: '1', material: m2.toString('base64') }] }, 'a@1 appears twice'],
  ])('rejects a bad keyring file with a message naming the field (%#)', (doc, message) => {
    expect(() => parseKeyring(doc, 'keyring.json')).toThrow(message);
  });
});

describe('LeakGuard (the test tool behind invariant 5) finds what it must', () => {
  it('finds a secret in hex, base64 at any offset, and inside a longer string; not otherwise', async () => {
    const { LeakGuard } = await import('./support/leak-guard.ts');
    const secret = randomBytes(32);
    const cases = [secret.toString('hex'), secret.toString('base64'), `x${secret.subarray(5).toString('base64')}y`, `id=${secret.toString('hex').toUpperCase().slice(3, 40)}`];
    for (const text of cases) {
      const g = new LeakGuard();
      g.secret(secret);
      g.text(text);
      expect(g.findLeaks(), text).not.toEqual([]);
    }
    const clean = new LeakGuard();
    clean.secret(secret);
    clean.text(randomBytes(64).toString('hex'), randomBytes(64).toString('base64'));
    expect(clean.findLeaks()).toEqual([]);
  });
});
