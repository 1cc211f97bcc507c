/**
 * A campaign's key map as a lookup: which entry (source -> destination) an item's KEK falls
 * under. An item whose KEK is no source of the map is out of scope: it is never moved to some
 * other entry's destination.
 */
import type { KekSelector, KekVersionRef } from '../core/kek-ref.ts';
import type { KeyMapEntry } from '../core/campaign-spec.ts';
import { matchesSelector } from './kek-selector.ts';

/** The key part of a KMS key id or ARN (`arn:aws:kms:r:a:key/<id>` and `<id>` name one key); undefined for an alias. */
export function kmsKeyPart(id: string): string | undefined {
  if (/(^|:)alias\//.test(id)) return undefined;
  return id.slice(id.lastIndexOf('/') + 1);
}

export class KekMap {
  readonly entries: readonly KeyMapEntry[];
  readonly #bySource = new Map<string, KeyMapEntry[]>();
  readonly #byKmsKey = new Map<string, KeyMapEntry[]>();
  readonly #destinations = new Map<string, KekSelector[]>();

  constructor(entries: readonly KeyMapEntry[]) {
    if (entries.length === 0) throw new Error('KekMap: no entries');
    this.entries = entries;
    for (const e of entries) {
      this.#bySource.set(e.from.id, [...(this.#bySource.get(e.from.id) ?? []), e]);
      const part = kmsKeyPart(e.from.id);
      if (part !== undefined) this.#byKmsKey.set(part, [...(this.#byKmsKey.get(part) ?? []), e]);
      this.#destinations.set(e.to.id, [...(this.#destinations.get(e.to.id) ?? []), e.to]);
    }
  }

  static of(from: KekSelector, to: KekSelector): KekMap {
    return new KekMap([{ from, to }]);
  }

  get size(): number {
    return this.entries.length;
  }

  /** The one entry of a one-entry map (today's from/to), else undefined. */
  get single(): KeyMapEntry | undefined {
    return this.entries.length === 1 ? this.entries[0] : undefined;
  }

  /**
   * The entry whose source the KEK is. `kms`: a key named by its id in one place and by its ARN
   * in the other is the same key (never an alias: that cannot be told without KMS).
   */
  entryFor(ref: KekVersionRef, kms = false): KeyMapEntry | undefined {
    const direct = this.#bySource.get(ref.id)?.find((e) => matchesSelector(ref, e.from));
    if (direct || !kms) return direct;
    const part = kmsKeyPart(ref.id);
    return part === undefined ? undefined : this.#byKmsKey.get(part)?.find((e) => matchesSelector({ ...ref, id: e.from.id }, e.from));
  }

  /** Whether the KEK is the destination of some entry. */
  isDestination(ref: KekVersionRef): boolean {
    return (this.#destinations.get(ref.id) ?? []).some((to) => matchesSelector(ref, to));
  }
}
