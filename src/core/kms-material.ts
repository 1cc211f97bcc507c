/**
 * KMS key material ids: which key material of a KMS key wraps a DEK. AWS reports them as 64
 * lowercase hex characters (KeyMaterialId, SourceKeyMaterialId, CurrentKeyMaterialId).
 * Draining one material (`<key>@<material id>`, the campaign a rotate-on-demand schedule starts)
 * must also take the items whose material nobody recorded: only KMS can tell theirs.
 */
import type { KekSelector, KekVersionRef } from './kek-ref.ts';

export const KMS_MATERIAL_ID_LENGTH = 64;
/** The same test as a Postgres regular expression, for the table source. */
export const KMS_MATERIAL_ID_PATTERN = `^[0-9a-f]{${KMS_MATERIAL_ID_LENGTH}}$`;
const MATERIAL_ID = new RegExp(KMS_MATERIAL_ID_PATTERN);

export function isKmsMaterialId(v: string | undefined): v is string {
  return v !== undefined && MATERIAL_ID.test(v);
}

/** The material recorded for an item: the material id, or a version that is one (tables keep it there). */
export function recordedMaterial(ref: KekVersionRef): string | undefined {
  return ref.materialId ?? (isKmsMaterialId(ref.version) ? ref.version : undefined);
}

/** A KMS campaign that drains one key material of its source key (not a whole key, not a named version). */
export function drainsKmsMaterial(providerKind: 'kms' | 'local' | 'pkcs11', from: KekSelector): boolean {
  return providerKind === 'kms' && isKmsMaterialId(from.version);
}

/**
 * Precondition for a write whose material only KMS could tell: the item is under the source key
 * (or names no key at all) and no material is recorded for it.
 */
export function materialUnknown(providerKind: 'kms' | 'local' | 'pkcs11', current: KekVersionRef | undefined, from: KekSelector): boolean {
  if (!drainsKmsMaterial(providerKind, from)) return false;
  return current === undefined || (current.id === from.id && recordedMaterial(current) === undefined);
}

/**
 * Whether an item seen under `ref` may be under `sel`: the same key and version or material, or,
 * for a material id, the same KMS key with no material recorded (only KMS could tell).
 */
export function mayBeUnder(ref: KekVersionRef, sel: KekSelector): boolean {
  if (ref.id !== sel.id) return false;
  if (sel.version === undefined || ref.version === sel.version || ref.materialId === sel.version) return true;
  return isKmsMaterialId(sel.version) && recordedMaterial(ref) === undefined;
}

/**
 * mayBeUnder as SQL over an inventory row aliased `v` (kek_id, kek_version, material_id): `id`,
 * `version` (text or NULL) and `pattern` (KMS_MATERIAL_ID_PATTERN) are parameter references.
 * `alias`: another row with those three columns (a batch-form exception, rewrap_batch_exceptions).
 */
export function mayBeUnderSql(id: string, version: string, pattern: string, alias = 'v'): string {
  const v = alias;
  return (
    `(${v}.kek_id = ${id} AND (${version}::text IS NULL OR ${v}.kek_version = ${version} OR ${v}.material_id = ${version}` +
    ` OR (${version} ~ ${pattern} AND ${v}.material_id IS NULL AND (${v}.kek_version IS NULL OR ${v}.kek_version !~ ${pattern}))))`
  );
}

