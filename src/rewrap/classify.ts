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
  const current = identified ?? env.stamp ?? env.dek.kek;
  if (materialUnknown(provider.kind, current, from)) return { kind: 'rewrap', current, materialUnknown: true };
  if (current && matchesSelector(current, to) && !matchesSelector(current, from)) {
    return { kind: 'skip', reason: 'already-at-target', current };
  }
  // Only a provider that can read the KEK off the envelope may declare it out of scope; a stamp
  // is a hint, and KMS itself refuses a wrong source key (SourceKeyId).
  if (identified && !matchesSelector(identified, from)) return { kind: 'skip', reason: 'not-under-source', current: identified };
  if (!identified && provider.kind === 'local' && env.dek.wrapAlg === 'AES/GCM') return { kind: 'unknown-kek' };
  return { kind: 'rewrap', current };
}
