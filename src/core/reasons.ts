/**
 * Reason codes: one stable, machine-readable word per way an item can end other than "rewrapped".
 * They go to the ledger, reports and metric labels (a fixed, small set: low cardinality).
 */
export const SKIP_REASONS = {
  'already-at-target': 'the item is already wrapped by the target KEK',
  'not-under-source': 'the item is wrapped by a KEK that is not the campaign source',
} as const;

export const PERMANENT_REASONS = {
  'item-missing': 'the item does not exist (deleted since it was planned)',
  'not-encrypted': 'the item carries no client-side encryption envelope',
  'instruction-file-missing': 'the object says its envelope is in an instruction file, but none exists',
  'instruction-file-malformed': 'the instruction file is not a JSON object of strings',
  'unsupported-v1': 'S3 Encryption Client V1 envelope (x-amz-key): not supported, left untouched',
  'unsupported-v3': 'S3 Encryption Client V3 envelope (x-amz-3...): not supported, left untouched',
  'unsupported-wrap-alg': 'wrapping algorithm is not kms+context, AES/GCM or (PKCS#11 provider only) AESWrap / AESWrapPad (kms, RSA...)',
  'unsupported-cek-alg': 'content cipher is not AES/GCM/NoPadding (e.g. CBC)',
  'malformed-envelope': 'a required envelope field is missing or empty',
  'malformed-wrapped-key': 'the wrapped key is not valid base64 or has an impossible length',
  'malformed-iv': 'the content IV is not valid base64 of 12 bytes',
  'malformed-tag-length': 'the tag length is not 128',
  'malformed-matdesc': 'the material description is not a JSON object of strings',
  'unknown-kek': 'no KEK known to the provider matches the item',
  'kek-disabled': 'the KEK needed for the rewrap is disabled',
  'invalid-ciphertext': 'the wrapped key does not decrypt (corrupt, or wrong encryption context)',
  'access-denied': 'the provider refused access to the KEK',
  'archived-storage-class': 'the S3 object is in an archive storage class or tier (GLACIER, DEEP_ARCHIVE, Intelligent-Tiering archive: InvalidObjectState); it cannot be copied in place, left untouched',
  'sse-c-object': 'the S3 object is encrypted with a customer-provided key (SSE-C) rewrap does not have; it cannot be read or copied, left untouched',
  'requester-pays': 'the S3 bucket charges the requester and the source does not say requesterPays: true; nothing was read or written',
  'null-version-would-be-replaced': 'the S3 bucket has versioning Suspended and the key has an older version with id "null", which a rewrite would replace for good; nothing was written',
  'unconditional-write-refused': 'the store offers no compare-and-swap and unconditional writes are not allowed',
  'store-rejected': 'the store refused the item with an error of its own (e.g. S3 MetadataTooLarge); the detail names it',
  'hsm-mechanism-unsupported': 'the HSM (PKCS#11 token) cannot wrap and unwrap with the mechanism this envelope format needs (e.g. AES/GCM on SoftHSM2); left untouched, never done in software',
  'provider-rejected': 'the KEK provider refused the item with an error that is not throttling (e.g. KMS ValidationException); the detail names it',
  'unexpected-error': 'rewrapping this item raised an error rewrap does not know (a reply it cannot parse, a bug); the detail names it, the item is untouched',
} as const;

export const TRANSIENT_REASONS = {
  throttled: 'the KEK provider throttled the request',
  'provider-unavailable': 'the KEK provider failed or timed out',
  'store-unavailable': 'the store failed or timed out',
  'conflict-retries-exhausted': 'the item kept changing under us; it will be retried later',
} as const;

export type SkipReason = keyof typeof SKIP_REASONS;
export type PermanentReason = keyof typeof PERMANENT_REASONS;
export type TransientReason = keyof typeof TRANSIENT_REASONS;
export type ReasonCode = SkipReason | PermanentReason | TransientReason;

export function describeReason(code: ReasonCode): string {
  return (
    (SKIP_REASONS as Record<string, string>)[code] ??
    (PERMANENT_REASONS as Record<string, string>)[code] ??
    (TRANSIENT_REASONS as Record<string, string>)[code]
  );
}

export function isTransient(code: ReasonCode): code is TransientReason {
  return code in TRANSIENT_REASONS;
}

/**
 * The only failures that free an item from every KEK (invariant 7): it is gone, or it carries no
 * envelope at all. Any other failure, an unreadable or unsupported envelope included (V1, V3,
 * unknown algorithms, malformed fields), may still be under the KEK its envelope names, or under
 * any KEK when it names none that can be decided: "cannot tell" counts as "still needs it".
 */
export const UNDER_NO_KEK_REASONS: readonly PermanentReason[] = ['item-missing', 'not-encrypted'];
