/**
 * How a KEK and a wrapped DEK are named everywhere: campaigns, envelopes, stores, providers,
 * the ledger. Names, ids and ciphertext only; never key material.
 */

export type WrapAlgorithm = 'kms+context' | 'AES/GCM';

/** A KEK as a campaign names it: an id, and optionally one version of it. */
export interface KekSelector {
  id: string;
  /** Local keyring: the version string. KMS: a key material id; absent means "any". */
  version?: string;
}

/** The KEK that wraps (or wrapped) a DEK, as far as it is known. */
export interface KekVersionRef {
  id: string;
  version?: string;
  /** KMS key material id (SourceKeyMaterialId / DestinationKeyMaterialId), where returned. */
  materialId?: string;
}

/** A wrapped data key with everything a provider needs to unwrap it. Not secret: ciphertext only. */
export interface WrappedDek {
  wrapAlg: WrapAlgorithm;
  /** Content cipher of the payload, e.g. AES/GCM/NoPadding; part of the KMS encryption context. */
  cekAlg: string;
  wrapped: Buffer;
  /** Material description (S3EC) or the encryption-context columns of a row. */
  matdesc: Record<string, string>;
  /** Which KEK the store says wraps it (Postgres KEK columns, or a valid rewrap stamp). */
  kek?: KekVersionRef;
}

export function formatKek(ref: KekVersionRef | KekSelector): string {
  return ref.version === undefined ? ref.id : `${ref.id}@${ref.version}`;
}
