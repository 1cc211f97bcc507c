/**
 * The rewrap stamp: an extra envelope key saying which KEK (id, version, KMS material) wraps the
 * DEK now. It is bound to the wrapped key by a digest, so a stamp that an application copied
 * along with other metadata onto a new DEK is recognised as stale and ignored.
 * The digest is of the *wrapped* key (ciphertext), never of key material.
 */
import { hash } from 'node:crypto';
import type { KekVersionRef } from '../core/kek-ref.ts';
import type { RewrapStamp } from '../core/envelope.ts';

export const STAMP_KEY = 'x-rewrap-kek';

export function wrappedDigest(wrapped: Buffer): string {
  /* crypto.hash: one call instead of a Hash object and three (once per item read and written). */
  return hash('sha256', wrapped, 'hex').slice(0, 16);
}

export function makeStamp(kek: KekVersionRef, wrapped: Buffer): RewrapStamp {
  return { ...kek, wrappedDigest: wrappedDigest(wrapped) };
}

export function serializeStamp(stamp: RewrapStamp): string {
  const o: Record<string, string> = { id: stamp.id };
  if (stamp.version !== undefined) o.v = stamp.version;
  if (stamp.materialId !== undefined) o.m = stamp.materialId;
  o.d = stamp.wrappedDigest;
  return JSON.stringify(o);
}

/** Returns the stamp only if it parses and belongs to this wrapped key; anything else is no stamp. */
export function parseStamp(text: string | undefined, wrapped: Buffer): RewrapStamp | undefined {
  if (!text) return undefined;
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof o !== 'object' || o === null) return undefined;
  const r = o as Record<string, unknown>;
  if (typeof r.id !== 'string' || typeof r.d !== 'string') return undefined;
  if (r.d !== wrappedDigest(wrapped)) return undefined;
  return {
    id: r.id,
    version: typeof r.v === 'string' ? r.v : undefined,
    materialId: typeof r.m === 'string' ? r.m : undefined,
    wrappedDigest: r.d,
  };
}
