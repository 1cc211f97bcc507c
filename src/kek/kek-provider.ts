/** The KEK port: the pipeline knows KEK providers only through this interface. */

/**
 * How a DEK is wrapped. `AES/GCM` and `kms+context` are S3EC V2's; `AESWrap` (RFC 3394) is the
 * legacy S3EC symmetric wrap (V1 clients in authenticated mode wrote it beside x-amz-key-v2;
 * V2 clients read it with legacy algorithms enabled); `AESWrapPad` (RFC 5649) exists only for
 * Postgres tables (a `pg` source's `wrapAlg`). Only the PKCS#11 provider handles the last two.
 */
export type WrapAlgorithm = 'kms+context' | 'AES/GCM' | 'AESWrap' | 'AESWrapPad';

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

export interface RewrapResult {
  wrapAlg: WrapAlgorithm;
  wrapped: Buffer;
  /** Material description to store with the new wrapped key (unchanged for kms+context). */
  matdesc: Record<string, string>;
  from: KekVersionRef;
  to: KekVersionRef;
  /** Provider request id, for the audit trail. */
  requestId?: string;
}

export interface KekProvider {
  readonly kind: 'kms' | 'local' | 'pkcs11';
  /**
   * Which KEK wraps this DEK, when the provider can tell without a remote call (local keyring:
   * from the matdesc or the store's KEK columns). Undefined when only the provider service knows.
   */
  identify(dek: WrappedDek): KekVersionRef | undefined;
  /**
   * Moves the DEK from `from` to `to` without the caller ever seeing the plaintext DEK.
   * Throws NotUnderSourceError when the DEK is wrapped by a KEK other than `from` (KMS
   * answers IncorrectKeyException because SourceKeyId is set), ItemError otherwise.
   */
  rewrap(dek: WrappedDek, from: KekSelector, to: KekSelector, signal?: AbortSignal): Promise<RewrapResult>;
  /**
   * For verification only (canary, retirement): unwraps the DEK under exactly `kek`, hands the
   * plaintext to `fn` and zeroes it afterwards, whatever `fn` does. Throws ItemError /
   * NotUnderSourceError when the DEK does not unwrap under `kek`.
   */
  withUnwrapped<T>(dek: WrappedDek, kek: KekSelector, fn: (plaintextDek: Buffer) => Promise<T>, signal?: AbortSignal): Promise<T>;
}

/** Runs `fn` on `plain` and zeroes `plain` afterwards (invariant 5: plaintext is short-lived). */
export async function zeroAfter<T>(plain: Buffer, fn: (b: Buffer) => Promise<T>): Promise<T> {
  try {
    return await fn(plain);
  } finally {
    plain.fill(0);
  }
}

export function formatKek(ref: KekVersionRef | KekSelector): string {
  return ref.version === undefined ? ref.id : `${ref.id}@${ref.version}`;
}

/**
 * The DEK is wrapped by some KEK other than the campaign source: the item is out of scope.
 * `rewrapped`: the provider rewrapped it anyway before it could tell (KMS ReEncrypt reports the
 * source key material only in its answer); the caller may use it where the item's material was
 * unknown (kms-material.ts), and must drop it otherwise.
 */
export class NotUnderSourceError extends Error {
  readonly actual?: KekVersionRef;
  readonly rewrapped?: RewrapResult;
  constructor(message: string, actual?: KekVersionRef, options?: { cause?: unknown; rewrapped?: RewrapResult }) {
    super(message, options);
    this.name = 'NotUnderSourceError';
    this.actual = actual;
    this.rewrapped = options?.rewrapped;
  }
}
