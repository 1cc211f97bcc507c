/** A parsed envelope and what an unreadable one still says, independent of where it is stored. */
import type { KekVersionRef, WrappedDek } from './kek-ref.ts';
import type { PermanentReason } from './reasons.ts';

/** What rewrap records next to the envelope: which KEK now wraps the DEK. */
export interface RewrapStamp extends KekVersionRef {
  /** First 16 hex chars of sha256(wrapped key): a stamp copied onto another DEK is ignored. */
  wrappedDigest: string;
}

/** A parsed envelope, independent of where it is stored. */
export interface Envelope {
  dek: WrappedDek;
  /** Valid stamp (its digest matches dek.wrapped), if any. */
  stamp?: RewrapStamp;
  /** Format fields carried through unchanged (S3EC iv, tag length, plaintext length...). */
  fields: Record<string, string>;
}

/**
 * What an item rewrap cannot rewrap (unsupported or malformed envelope) still says about its KEK,
 * as far as it could be read: the retirement gate and the inventory need it (invariant 7).
 * Absent: nothing readable names a KEK, and the item may be under any.
 */
export interface KekReference {
  /** The material description (S3EC x-amz-matdesc), when it parsed as a JSON object of strings. */
  matdesc?: Record<string, string>;
  /** The store's KEK columns (Postgres rows), when they name a KEK. */
  kek?: KekVersionRef;
}

/** An item rewrap cannot rewrap, with its reason code and what its envelope says about its KEK. */
export interface InvalidEnvelope {
  kind: 'invalid';
  reason: PermanentReason;
  detail: string;
  kekReference?: KekReference;
}
