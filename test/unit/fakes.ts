/** Fake ports for the unit tests: no network, no database, no key material worth the name. */
import type { KekProvider, RewrapResult } from '../../src/kek/kek-provider.ts';
import type { KekSelector, KekVersionRef, WrappedDek } from '../../src/core/kek-ref.ts';
import type { Envelope } from '../../src/core/envelope.ts';
import type { EnvelopeStore, ItemRef, ReadResult, WriteResult } from '../../src/stores/envelope-store.ts';

export const kek = (text: string): KekVersionRef => {
  const [id, version] = text.split('@');
  return version === undefined ? { id: id! } : { id: id!, version };
};

/** An AES/GCM envelope whose matdesc names its keyring KEK ("k@1"), or a kms+context one. */
export function envelope(o: { under?: string; wrapAlg?: WrappedDek['wrapAlg']; kek?: KekVersionRef; stamp?: KekVersionRef } = {}): Envelope {
  const wrapped = Buffer.from(`wrapped-under-${o.under ?? 'none'}`);
  return {
    dek: { wrapAlg: o.wrapAlg ?? 'AES/GCM', cekAlg: 'AES/GCM/NoPadding', wrapped, matdesc: o.under ? { kek: o.under } : {}, ...(o.kek ? { kek: o.kek } : {}) },
    ...(o.stamp ? { stamp: { ...o.stamp, wrappedDigest: 'x' } } : {}),
    fields: {},
  };
}

/**
 * A provider that reads the KEK off the matdesc (like the keyring) when `kind` is local, and
 * rewraps by renaming; `fail` makes rewrap throw what it returns.
 */
export function fakeProvider(kind: 'local' | 'kms' = 'local', fail?: (dek: WrappedDek) => unknown): KekProvider & { calls: number } {
  return {
    kind,
    calls: 0,
    identify(dek) {
      return kind === 'local' && dek.matdesc.kek ? kek(dek.matdesc.kek) : undefined;
    },
    async rewrap(dek, from: KekSelector, to: KekSelector): Promise<RewrapResult> {
      this.calls++;
      const err = fail?.(dek);
      if (err) throw err;
      const target = `${to.id}@${to.version ?? 'current'}`;
      return { wrapAlg: dek.wrapAlg, wrapped: Buffer.from(`wrapped-under-${target}`), matdesc: { kek: target }, from: { ...from }, to: kek(target) };
    },
    async withUnwrapped() {
      throw new Error('not used');
    },
  };
}

/** A per-item store over a map; `conflicts(key)` answers how many writes of the key conflict first. */
export function fakeStore(items: Record<string, Envelope>, conflicts: (key: string) => number = () => 0): EnvelopeStore & { writes: string[] } {
  const version = new Map<string, number>();
  const refused = new Map<string, number>();
  const store = {
    id: 'pg:fake' as const,
    writes: [] as string[],
    async casLevel() {
      return 'strong' as never;
    },
    async read(item: ItemRef): Promise<ReadResult> {
      const env = items[item.key];
      if (!env) return { kind: 'invalid', reason: 'item-missing', detail: `${item.key}: not found` };
      return { kind: 'envelope', envelope: env, token: version.get(item.key) ?? 0 };
    },
    async writeIfUnchanged(item: ItemRef, token: unknown, next: Envelope): Promise<WriteResult> {
      const n = refused.get(item.key) ?? 0;
      if (n < conflicts(item.key)) {
        refused.set(item.key, n + 1);
        version.set(item.key, (version.get(item.key) ?? 0) + 1); // someone else wrote meanwhile
        return 'conflict';
      }
      if (token !== (version.get(item.key) ?? 0)) return 'conflict';
      items[item.key] = next;
      store.writes.push(item.key);
      return 'written';
    },
  };
  return store;
}
