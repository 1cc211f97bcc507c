/**
 * Before any KMS call: is the item already at the target, or visibly out of scope?
 * Invariant 2: a re-run reads the item, sees it at the target, and skips.
 */
import type { KekProvider } from '../kek/kek-provider.ts';
import type { KekSelector, KekVersionRef } from '../core/kek-ref.ts';
import type { Envelope } from '../core/envelope.ts';
import type { SkipReason } from '../core/reasons.ts';
import { materialUnknown } from '../core/kms-material.ts';
import { matchesSelector } from '../kek/kek-selector.ts';
import type { KekMap } from '../kek/kek-map.ts';
import type { KeyMapEntry } from '../core/campaign-spec.ts';

/** The KEK wrapping the envelope, as far as we can tell without a remote call. */
export function currentKek(env: Envelope, provider: KekProvider): KekVersionRef | undefined {
  return provider.identify(env.dek) ?? env.stamp ?? env.dek.kek;
}

export type Classification =
  /** `materialUnknown`: only the provider's answer tells whether the item is under the source material. */
  | { kind: 'rewrap'; current?: KekVersionRef; materialUnknown?: boolean }
  | { kind: 'skip'; reason: SkipReason; current?: KekVersionRef }
  | { kind: 'unknown-kek' };

export function classify(env: Envelope, provider: KekProvider, from: KekSelector, to: KekSelector): Classification {
  // A KMS blob is never under a keyring KEK, and a raw-AES-wrapped key never under a KMS key.
  const foreign = (provider.kind === 'kms') !== (env.dek.wrapAlg === 'kms+context');
  if (foreign) return { kind: 'skip', reason: 'not-under-source', current: env.stamp ?? env.dek.kek };
  const identified = provider.identify(env.dek);
  return decide(env, provider, identified, identified ?? env.stamp ?? env.dek.kek, from, to);
}

/**
 * classify over a key map: the entry whose source KEK wraps the item decides, as `classify` with
 * that entry's from/to. A one-entry map is exactly `classify`. With several entries, an item is
 * matched by the KEK it names (the provider's identification, a rewrap stamp or the store's KEK
 * columns); one under a KEK that is no source of the map is out of scope (never moved to another
 * entry's destination), and a KMS item naming no key at all cannot be matched: it fails as
 * `unknown-kek` and, naming no KEK, still counts under every source of the map (invariant 7).
 */
export function classifyInMap(env: Envelope, provider: KekProvider, map: KekMap): Classification & { entry?: KeyMapEntry } {
  const single = map.single;
  if (single) return { ...classify(env, provider, single.from, single.to), entry: single };
  const foreign = (provider.kind === 'kms') !== (env.dek.wrapAlg === 'kms+context');
  if (foreign) return { kind: 'skip', reason: 'not-under-source', current: env.stamp ?? env.dek.kek };
  const identified = provider.identify(env.dek);
  const current = identified ?? env.stamp ?? env.dek.kek;
  const entry = current && map.entryFor(current, provider.kind === 'kms');
  if (!entry) {
    if (current && map.isDestination(current)) return { kind: 'skip', reason: 'already-at-target', current };
    if (current) return { kind: 'skip', reason: 'not-under-source', current };
    return { kind: 'unknown-kek' };
  }
  return { ...decide(env, provider, identified, current, entry.from, entry.to), entry };
}

function decide(env: Envelope, provider: KekProvider, identified: KekVersionRef | undefined, current: KekVersionRef | undefined, from: KekSelector, to: KekSelector): Classification {
  if (materialUnknown(provider.kind, current, from)) return { kind: 'rewrap', current, materialUnknown: true };
  if (current && matchesSelector(current, to) && !matchesSelector(current, from)) {
    return { kind: 'skip', reason: 'already-at-target', current };
  }
  // Only a provider that can read the KEK off the envelope may declare it out of scope; a stamp
  // is a hint, and KMS itself refuses a wrong source key (SourceKeyId).
  if (identified && !matchesSelector(identified, from)) return { kind: 'skip', reason: 'not-under-source', current: identified };
  // A keyring or token KEK is chosen by the KEK columns or the matdesc, as a reader chooses it.
  if (!identified && provider.kind !== 'kms' && env.dek.wrapAlg !== 'kms+context') return { kind: 'unknown-kek' };
  return { kind: 'rewrap', current };
}
