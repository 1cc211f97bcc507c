/** The KEK port: the pipeline knows KEK providers only through this interface. */
import type { KekSelector, KekVersionRef, WrapAlgorithm, WrappedDek } from '../core/kek-ref.ts';

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
  readonly kind: 'kms' | 'local';
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
