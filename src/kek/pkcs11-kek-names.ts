/**
 * KEK names (`<id>@<version>`, as campaigns and stores name them) to token object labels and
 * back. By default the label is the name itself; the provider spec's `labels` map names other
 * labels for some KEKs (an HSM whose keys were labelled by another convention).
 */
import type { KekSelector, KekVersionRef } from '../core/kek-ref.ts';

export class Pkcs11KekNames {
  readonly #toLabel: Map<string, string>;
  readonly #fromLabel: Map<string, string>;

  /** `labels`: `{ "<id>@<version>": "<token label>" }`. */
  constructor(labels: Record<string, string>) {
    this.#toLabel = new Map(Object.entries(labels));
    this.#fromLabel = new Map(Object.entries(labels).map(([name, label]) => [label, name]));
  }

  /** The token label of a KEK version. */
  label(kek: KekSelector): string {
    const name = `${kek.id}@${kek.version ?? ''}`;
    return this.#toLabel.get(name) ?? name;
  }

  /** The KEK a token label stands for, if it follows `<id>@<version>` or is in the map. */
  fromLabel(label: string): KekVersionRef | undefined {
    return this.parse(this.#fromLabel.get(label) ?? (this.#toLabel.has(label) ? undefined : label));
  }

  /** `"orders@2"` -> { id: "orders", version: "2" }. */
  parse(name: string | undefined): KekVersionRef | undefined {
    if (!name) return undefined;
    const i = name.lastIndexOf('@');
    if (i <= 0 || i === name.length - 1) return undefined;
    return { id: name.slice(0, i), version: name.slice(i + 1) };
  }
}
