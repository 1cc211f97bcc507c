import { describe, expect, it } from 'vitest';
import { ConfigError, ItemError, permanent, transient } from '../../src/core/errors.ts';
import { NotUnderSourceError } from '../../src/kek/kek-provider.ts';
import { fromError, prepare, rewrapItem } from '../../src/rewrap/rewrap-item.ts';
import { envelope, fakeProvider, fakeStore, kek } from './fakes.ts';

const FROM = kek('k@1');
const TO = kek('k@2');
const read = (under: string) => ({ kind: 'envelope' as const, envelope: envelope({ under }), token: 0 });

describe('ItemError and fromError: the reason code decides retry or record', () => {
  it('transient is derived from the reason code, never set beside it', () => {
    expect(transient('throttled', 'x').transient).toBe(true);
    expect(permanent('kek-disabled', 'x').transient).toBe(false);
    expect(new ItemError('store-unavailable', 'x').transient).toBe(true);
  });

  it('a transient reason is a retry, a permanent one a failure; the detail names the item; other errors propagate', () => {
    expect(fromError('a', transient('throttled', 'slow down'))).toEqual({ status: 'retry', key: 'a', reason: 'throttled', detail: 'a: slow down' });
    expect(fromError('a', permanent('invalid-ciphertext', 'corrupt'))).toEqual({ status: 'failed', key: 'a', reason: 'invalid-ciphertext', detail: 'a: corrupt' });
    expect(() => fromError('a', new TypeError('bug'))).toThrow(TypeError);
  });
});

describe('prepare: classify, then the provider', () => {
  it('an unreadable item fails with its reason and keeps the KEK it still names (invariant 7)', async () => {
    const t = { store: fakeStore({}), provider: fakeProvider(), from: FROM, to: TO };
    const o = await prepare(t, 'a', { kind: 'invalid', reason: 'unsupported-v1', detail: 'V1', kekReference: { kek: FROM } });
    expect(o).toEqual({ status: 'failed', key: 'a', reason: 'unsupported-v1', detail: 'V1', current: FROM });
  });

  it('an item at the target costs no provider call', async () => {
    const provider = fakeProvider();
    const o = await prepare({ store: fakeStore({}), provider, from: FROM, to: TO }, 'a', read('k@2'));
    expect(o).toMatchObject({ status: 'skipped', reason: 'already-at-target' });
    expect(provider.calls).toBe(0);
  });

  it('a provider failure is the item outcome and the item still counts under the KEK that wraps it', async () => {
    const t = { store: fakeStore({}), provider: fakeProvider('local', () => permanent('kek-disabled', 'disabled')), from: FROM, to: TO };
    expect(await prepare(t, 'a', read('k@1'))).toEqual({ status: 'failed', key: 'a', reason: 'kek-disabled', detail: 'a: disabled', current: FROM });
  });

  it('NotUnderSourceError skips the item as not under the source, naming what it is under', async () => {
    const t = { store: fakeStore({}), provider: fakeProvider('local', () => new NotUnderSourceError('other', kek('j@1'))), from: FROM, to: TO };
    expect(await prepare(t, 'a', read('k@1'))).toEqual({ status: 'skipped', key: 'a', reason: 'not-under-source', current: kek('j@1') });
  });

  it('an error rewrap does not know fails the item alone (unexpected-error); a ConfigError ends the batch', async () => {
    const odd = { store: fakeStore({}), provider: fakeProvider('local', () => new TypeError('cannot parse')), from: FROM, to: TO };
    expect(await prepare(odd, 'a', read('k@1'))).toMatchObject({ status: 'failed', reason: 'unexpected-error', detail: 'a: TypeError: cannot parse' });
    const config = { store: fakeStore({}), provider: fakeProvider('local', () => new ConfigError('wrong endpoint')), from: FROM, to: TO };
    await expect(prepare(config, 'a', read('k@1'))).rejects.toThrow(ConfigError);
  });
});

describe('the conflict-retry loop', () => {
  it('an item that changed between read and write is read again and rewrapped on top (never overwritten)', async () => {
    const store = fakeStore({ a: envelope({ under: 'k@1' }) }, () => 2);
    const o = await rewrapItem({ store, provider: fakeProvider(), from: FROM, to: TO }, { key: 'a' });
    expect(o).toMatchObject({ status: 'rewrapped', key: 'a', conflicts: 2, to: TO });
    expect(store.writes).toEqual(['a']);
  });

  it('after maxConflictRetries the item is left for a later retry, unwritten', async () => {
    const store = fakeStore({ a: envelope({ under: 'k@1' }) }, () => 99);
    const o = await rewrapItem({ store, provider: fakeProvider(), from: FROM, to: TO, maxConflictRetries: 2 }, { key: 'a' });
    expect(o).toEqual({ status: 'retry', key: 'a', reason: 'conflict-retries-exhausted', detail: 'changed under us 3 times' });
    expect(store.writes).toEqual([]);
  });

  it('the fence stops the write: its error propagates, nothing is written (invariant 8)', async () => {
    const store = fakeStore({ a: envelope({ under: 'k@1' }) });
    const { WriteFencedError } = await import('../../src/stores/envelope-store.ts');
    const fence = () => {
      throw new WriteFencedError('lease lost');
    };
    await expect(rewrapItem({ store, provider: fakeProvider(), from: FROM, to: TO, fence }, { key: 'a' })).rejects.toThrow('lease lost');
    expect(store.writes).toEqual([]);
  });
});
