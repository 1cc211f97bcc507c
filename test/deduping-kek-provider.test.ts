/**
 * DedupingKekProvider in front of a real keyring: shared wrapped DEKs cost one provider call,
 * the cache stays within its bound however many distinct DEKs pass, and every result (fresh,
 * reused, or recomputed after eviction) unwraps to the item's own DEK under the new KEK.
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { LocalKeyringProvider } from '../src/kek/local-keyring-provider.ts';
import { cacheKey, DedupingKekProvider } from '../src/kek/deduping-kek-provider.ts';
import { ForwardingKekProvider } from '../src/kek/forwarding-kek-provider.ts';
import { parseKeyring } from '../src/kek/keyring-file.ts';
import { NotUnderSourceError, type RewrapResult } from '../src/kek/kek-provider.ts';
import type { KekSelector, WrappedDek } from '../src/core/kek-ref.ts';
import { aesUnwrap, aesWrap, CEK } from '../dev/reference/s3ec-client.ts';
import { WriteFencedError } from '../src/core/errors.ts';

const m1 = randomBytes(32);
const m2 = randomBytes(32);
const from = { id: 'orders', version: '1' };
const to = { id: 'orders', version: '2' };

/** Counts the calls that reach the keyring: what a KMS quota would be charged. */
class CallCount extends ForwardingKekProvider {
  calls = 0;
  override rewrap(dek: WrappedDek, f: KekSelector, t: KekSelector, signal?: AbortSignal): Promise<RewrapResult> {
    this.calls++;
    return super.rewrap(dek, f, t, signal);
  }
}

function setup(maxEntries: number, opts?: { missRunBeforeSampling?: number }) {
  const ring = new LocalKeyringProvider(
    parseKeyring({ keks: [{ id: 'orders', version: '1', material: m1.toString('base64') }, { id: 'orders', version: '2', material: m2.toString('base64') }] }),
  );
  const counted = new CallCount(ring);
  return { counted, dedupe: new DedupingKekProvider(counted, maxEntries, opts) };
}

const wrapUnder1 = (dek: Buffer): WrappedDek => ({ wrapAlg: 'AES/GCM', cekAlg: CEK, wrapped: aesWrap(m1, dek), matdesc: { kek: 'orders@1' } });

describe('DedupingKekProvider', () => {
  it('1,000 items sharing 10 wrapped DEKs cost 10 keyring calls; each result unwraps to its own DEK under orders@2', async () => {
    const { counted, dedupe } = setup(100);
    const deks = Array.from({ length: 10 }, () => randomBytes(32));
    const wrapped = deks.map(wrapUnder1);
    const results = await Promise.all(Array.from({ length: 1000 }, (_, i) => dedupe.rewrap(wrapped[i % 10]!, from, to)));
    expect(counted.calls).toBe(10);
    results.forEach((r, i) => expect(aesUnwrap(m2, r.wrapped).equals(deks[i % 10]!), `item ${i}`).toBe(true));
  });

  it('stays within maxEntries over 5,000 distinct DEKs, and a DEK seen before eviction is rewrapped again correctly', async () => {
    const { counted, dedupe } = setup(1000);
    const deks = Array.from({ length: 5000 }, () => randomBytes(32));
    const wrapped = deks.map(wrapUnder1);
    for (let i = 0; i < deks.length; i++) {
      const r = await dedupe.rewrap(wrapped[i]!, from, to);
      expect(aesUnwrap(m2, r.wrapped).equals(deks[i]!)).toBe(true);
      expect(dedupe.size).toBeLessThanOrEqual(1000);
    }
    expect(counted.calls).toBe(5000);
    // The most recent ones are still reused; the first one was evicted and costs a call again.
    await dedupe.rewrap(wrapped[4999]!, from, to);
    expect(counted.calls).toBe(5000);
    const again = await dedupe.rewrap(wrapped[0]!, from, to);
    expect(counted.calls).toBe(5001);
    expect(aesUnwrap(m2, again.wrapped).equals(deks[0]!)).toBe(true);
  });

  it('keeps reusing a DEK that stays in use while others come and go', async () => {
    const { counted, dedupe } = setup(100);
    const hot = wrapUnder1(randomBytes(32));
    for (let i = 0; i < 1000; i++) {
      await dedupe.rewrap(hot, from, to);
      await dedupe.rewrap(wrapUnder1(randomBytes(32)), from, to);
    }
    expect(counted.calls).toBe(1 + 1000);
  });

  it('does not keep a failure: a wrapped key that does not authenticate is tried again, and fails again', async () => {
    const { counted, dedupe } = setup(100);
    const corrupt = { ...wrapUnder1(randomBytes(32)) };
    corrupt.wrapped = Buffer.from(corrupt.wrapped);
    corrupt.wrapped[corrupt.wrapped.length - 1]! ^= 1;
    await expect(dedupe.rewrap(corrupt, from, to)).rejects.toMatchObject({ reason: 'invalid-ciphertext' });
    await expect(dedupe.rewrap(corrupt, from, to)).rejects.toMatchObject({ reason: 'invalid-ciphertext' });
    expect(counted.calls).toBe(2);
    expect(dedupe.size).toBe(0);
  });

  it('keeps "not under the source": 100 items sharing a DEK under another version cost one keyring call, and each is told so', async () => {
    const { counted, dedupe } = setup(100);
    const underV2: WrappedDek = { wrapAlg: 'AES/GCM', cekAlg: CEK, wrapped: aesWrap(m2, randomBytes(32)), matdesc: { kek: 'orders@2' } };
    const settled = await Promise.allSettled(Array.from({ length: 100 }, () => dedupe.rewrap(underV2, from, to)));
    for (const s of settled) expect(s.status === 'rejected' && s.reason).toBeInstanceOf(NotUnderSourceError);
    await expect(dedupe.rewrap(underV2, from, to)).rejects.toBeInstanceOf(NotUnderSourceError);
    expect(counted.calls).toBe(1);
  });

  it('after a long run of distinct DEKs it remembers only a sample, and a DEK that starts repeating is reused again after a few calls', async () => {
    const { counted, dedupe } = setup(10_000, { missRunBeforeSampling: 500 });
    for (let i = 0; i < 2000; i++) await dedupe.rewrap(wrapUnder1(randomBytes(32)), from, to);
    expect(counted.calls).toBe(2000);
    expect(dedupe.size).toBeLessThan(500 + 1500 / 16 + 2);
    const dek = randomBytes(32);
    const shared = wrapUnder1(dek);
    for (let i = 0; i < 200; i++) expect(aesUnwrap(m2, (await dedupe.rewrap(shared, from, to)).wrapped).equals(dek)).toBe(true);
    // Remembered at most 16 uses after it first appears; every later use is free.
    expect(counted.calls - 2000).toBeLessThanOrEqual(16);
    // Back to remembering everything: the next distinct DEKs are all kept.
    const before = dedupe.size;
    for (let i = 0; i < 50; i++) await dedupe.rewrap(wrapUnder1(randomBytes(32)), from, to);
    expect(dedupe.size).toBe(before + 50);
  });

  it('a caller that joined a rewrap the first caller then abandoned (its lease lost, its abort) gets a rewrap of its own, not that caller\'s interruption', async () => {
    const ring = new LocalKeyringProvider(
      parseKeyring({ keks: [{ id: 'orders', version: '1', material: m1.toString('base64') }, { id: 'orders', version: '2', material: m2.toString('base64') }] }),
    );
    /* The first call waits (a KMS call in flight, a budget wait) until its caller's signal aborts. */
    class FirstWaits extends CallCount {
      override rewrap(dek: WrappedDek, f: KekSelector, t: KekSelector, signal?: AbortSignal): Promise<RewrapResult> {
        if (this.calls > 0) return super.rewrap(dek, f, t, signal);
        this.calls++;
        if (signal!.aborted) return Promise.reject(signal!.reason);
        return new Promise((_, reject) => signal!.addEventListener('abort', () => reject(signal!.reason), { once: true }));
      }
    }
    const counted = new FirstWaits(ring);
    const dedupe = new DedupingKekProvider(counted, 100);
    for (const reason of [new WriteFencedError('lease of batch c/1 lost'), new DOMException('aborted', 'AbortError')]) {
      counted.calls = 0;
      const dek = randomBytes(32);
      const wrapped = wrapUnder1(dek);
      const a = new AbortController();
      const first = dedupe.rewrap(wrapped, from, to, a.signal);
      const joined = dedupe.rewrap(wrapped, from, to, new AbortController().signal);
      a.abort(reason);
      await expect(first).rejects.toBe(reason);
      const r = await joined;
      expect(aesUnwrap(m2, r.wrapped).equals(dek)).toBe(true);
      expect(counted.calls).toBe(2);
      // And a caller whose own signal ended gets its own interruption, not a retry.
      const b = new AbortController();
      b.abort(reason);
      const other = wrapUnder1(randomBytes(32));
      counted.calls = 0;
      const mine = dedupe.rewrap(other, from, to, b.signal);
      await expect(dedupe.rewrap(other, from, to, b.signal)).rejects.toBe(reason);
      await expect(mine).rejects.toBe(reason);
    }
  });

  it('the cache key tells apart inputs that a plain concatenation would confuse: a result is never reused for another DEK', () => {
    const base: WrappedDek = { wrapAlg: 'AES/GCM', cekAlg: CEK, wrapped: Buffer.from('ab'), matdesc: {} };
    const keys = [
      cacheKey(base, from, to),
      cacheKey({ ...base, wrapped: Buffer.from('a'), cekAlg: 'b' + CEK }, from, to),
      cacheKey({ ...base, matdesc: { a: 'b:c' } }, from, to),
      cacheKey({ ...base, matdesc: { 'a:b': 'c' } }, from, to),
      cacheKey({ ...base, matdesc: { a: '', b: '' } }, from, to),
      cacheKey({ ...base, matdesc: { a: '1:b0:' } }, from, to),
      cacheKey(base, { id: 'orders' }, to),
      cacheKey(base, { id: 'orders', version: '' }, to),
      cacheKey(base, from, { id: 'orders', version: '1' }),
      cacheKey({ ...base, kek: { id: 'orders', version: '1' } }, from, to),
      cacheKey({ ...base, wrapped: Buffer.from([0x61, 0x62, 0]) }, from, to),
    ];
    expect(new Set(keys).size).toBe(keys.length);
    expect(cacheKey({ ...base, matdesc: { x: '1', y: '2' } }, from, to)).toBe(cacheKey({ ...base, matdesc: { y: '2', x: '1' } }, from, to));
  });
});
