/** Whether a KEK seen on an item is the one a selector names: one rule for classify, the canary and the retirement gate. */
import type { KekSelector, KekVersionRef } from '../core/kek-ref.ts';

/** Same id, and the selector's version (if it names one) is the item's version or KMS key material id. */
export function matchesSelector(ref: KekVersionRef, sel: KekSelector): boolean {
  if (ref.id !== sel.id) return false;
  if (sel.version === undefined) return true;
  return ref.version === sel.version || ref.materialId === sel.version;
}
