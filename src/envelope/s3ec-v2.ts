/**
 * Amazon S3 Encryption Client V2 content-metadata format, as the official clients write it:
 * in S3 user metadata (x-amz-meta-x-amz-key-v2 ...) or in a JSON instruction file.
 * Parsing is strict: anything we cannot rewrap safely gets a reason code and is never modified.
 */
import type { WrapAlgorithm } from '../core/kek-ref.ts';
import type { Envelope, InvalidEnvelope, KekReference } from '../core/envelope.ts';
import { decodeBase64Strict } from '../core/base64.ts';
import type { PermanentReason } from '../core/reasons.ts';
import { STAMP_KEY, makeStamp, parseStamp, serializeStamp } from './stamp.ts';

export const V2 = {
  key: 'x-amz-key-v2',
  wrapAlg: 'x-amz-wrap-alg',
  cekAlg: 'x-amz-cek-alg',
  iv: 'x-amz-iv',
  matdesc: 'x-amz-matdesc',
  tagLen: 'x-amz-tag-len',
  plainLength: 'x-amz-unencrypted-content-length',
} as const;

/** Keys that belong to the envelope (replaced on rewrap); all other metadata is the user's. */
export const ENVELOPE_KEYS: readonly string[] = [...Object.values(V2), STAMP_KEY];

/** Marks an object as an instruction file (its value is empty in the official clients). */
export const INSTRUCTION_FILE_MARKER = 'x-amz-crypto-instr-file';
export const INSTRUCTION_SUFFIX = '.instruction';

export const GCM_CEK_ALG = 'AES/GCM/NoPadding';
const SUPPORTED_WRAP: readonly string[] = ['kms+context', 'AES/GCM'];
/** AES-256 DEK wrapped with AES-GCM: 12-byte IV || 32-byte ciphertext || 16-byte tag. */
const AES_GCM_WRAPPED_BYTES = 12 + 32 + 16;
/** A KMS ciphertext blob is at most 6144 bytes; anything under 32 cannot hold a 32-byte DEK. */
const KMS_BLOB_MIN = 32;
const KMS_BLOB_MAX = 6144;

type Invalid = InvalidEnvelope;
const invalid = (reason: PermanentReason, detail: string, kekReference?: KekReference): Invalid =>
  kekReference ? { kind: 'invalid', reason, detail, kekReference } : { kind: 'invalid', reason, detail };

/** Which generation of envelope a metadata map carries, without validating it. */
export function detectFormat(meta: Record<string, string>): 'v2' | 'v1' | 'v3' | 'none' {
  if (V2.key in meta) return 'v2';
  if ('x-amz-key' in meta) return 'v1';
  if ('x-amz-3' in meta || 'x-amz-w' in meta) return 'v3';
  return 'none';
}

/** True when an object without envelope metadata still looks client-side encrypted. */
export function hasEncryptionHints(meta: Record<string, string>): boolean {
  return V2.cekAlg in meta || V2.iv in meta || V2.plainLength in meta || V2.tagLen in meta;
}

/**
 * Parses a V2 envelope from a map of lower-case keys (S3 user metadata without the
 * `x-amz-meta-` prefix, or an instruction file's JSON). `where` names the item in messages.
 */
export function parseV2(meta: Record<string, string>, where: string): { kind: 'envelope'; envelope: Envelope } | Invalid {
  const format = detectFormat(meta);
  if (format === 'none') return invalid('not-encrypted', `${where}: no x-amz-key-v2 envelope`);
  /* Invariant 7: an envelope we do not rewrap still names its KEK where its matdesc can be read. */
  const ref = matdescReference(meta);
  if (format === 'v1') return invalid('unsupported-v1', `${where}: has x-amz-key (S3EC V1); only V2 (x-amz-key-v2) is rewrapped`, ref);
  if (format === 'v3') return invalid('unsupported-v3', `${where}: has x-amz-3 (S3EC V3); only V2 (x-amz-key-v2) is rewrapped`, ref);

  const wrapAlg = meta[V2.wrapAlg];
  if (!wrapAlg) return invalid('malformed-envelope', `${where}: ${V2.wrapAlg} is missing; expected kms+context or AES/GCM`, ref);
  if (!SUPPORTED_WRAP.includes(wrapAlg)) {
    return invalid('unsupported-wrap-alg', `${where}: ${V2.wrapAlg} is ${JSON.stringify(wrapAlg)}; expected kms+context or AES/GCM`, ref);
  }
  const cekAlg = meta[V2.cekAlg];
  if (!cekAlg) return invalid('malformed-envelope', `${where}: ${V2.cekAlg} is missing; expected ${GCM_CEK_ALG}`, ref);
  if (cekAlg !== GCM_CEK_ALG) {
    return invalid('unsupported-cek-alg', `${where}: ${V2.cekAlg} is ${JSON.stringify(cekAlg)}; expected ${GCM_CEK_ALG}`, ref);
  }
  const wrapped = decodeBase64Strict(meta[V2.key] ?? '');
  if (!wrapped) return invalid('malformed-wrapped-key', `${where}: ${V2.key} is empty or not base64`, ref);
  if (wrapAlg === 'AES/GCM' && wrapped.length !== AES_GCM_WRAPPED_BYTES) {
    return invalid(
      'malformed-wrapped-key',
      `${where}: ${V2.key} decodes to ${wrapped.length} bytes; AES/GCM-wrapped AES-256 keys are ${AES_GCM_WRAPPED_BYTES}`,
      ref,
    );
  }
  if (wrapAlg === 'kms+context' && (wrapped.length < KMS_BLOB_MIN || wrapped.length > KMS_BLOB_MAX)) {
    return invalid(
      'malformed-wrapped-key',
      `${where}: ${V2.key} decodes to ${wrapped.length} bytes; a KMS ciphertext blob is ${KMS_BLOB_MIN}-${KMS_BLOB_MAX}`,
      ref,
    );
  }
  const iv = decodeBase64Strict(meta[V2.iv] ?? '');
  if (!iv || iv.length !== 12) return invalid('malformed-iv', `${where}: ${V2.iv} must be base64 of 12 bytes`, ref);
  const tagLen = meta[V2.tagLen];
  if (tagLen !== '128') return invalid('malformed-tag-length', `${where}: ${V2.tagLen} is ${JSON.stringify(tagLen ?? null)}; expected "128"`, ref);
  const matdesc = parseMatdesc(meta[V2.matdesc]);
  if (!matdesc) return invalid('malformed-matdesc', `${where}: ${V2.matdesc} must be a JSON object of string values`);

  const fields: Record<string, string> = { [V2.iv]: meta[V2.iv]!, [V2.tagLen]: tagLen };
  if (meta[V2.plainLength] !== undefined) fields[V2.plainLength] = meta[V2.plainLength]!;
  return {
    kind: 'envelope',
    envelope: {
      dek: { wrapAlg: wrapAlg as WrapAlgorithm, cekAlg, wrapped, matdesc },
      stamp: parseStamp(meta[STAMP_KEY], wrapped),
      fields,
    },
  };
}

/** The matdesc of any envelope generation (V1 and V2 both keep it in x-amz-matdesc), if it parses. */
export function matdescReference(meta: Record<string, string>): KekReference | undefined {
  const text = meta[V2.matdesc];
  if (text === undefined) return undefined;
  const matdesc = parseMatdesc(text);
  return matdesc ? { matdesc } : undefined;
}

function parseMatdesc(text: string | undefined): Record<string, string> | undefined {
  if (text === undefined || text === '') return {};
  return parseStringMap(text);
}

/** A JSON object whose values are all strings (matdesc, an instruction file), or undefined. */
export function parseStringMap(text: string): Record<string, string> | undefined {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return undefined;
  for (const v of Object.values(o)) if (typeof v !== 'string') return undefined;
  return o as Record<string, string>;
}

/** The envelope keys to write; the caller merges them over the user's other metadata. */
export function serializeV2(env: Envelope): Record<string, string> {
  const out: Record<string, string> = {
    [V2.key]: env.dek.wrapped.toString('base64'),
    [V2.wrapAlg]: env.dek.wrapAlg,
    [V2.cekAlg]: env.dek.cekAlg,
    [V2.matdesc]: JSON.stringify(env.dek.matdesc),
    ...env.fields,
  };
  if (env.stamp) out[STAMP_KEY] = serializeStamp(env.stamp);
  return out;
}

/** The envelope after a rewrap: new wrapped key, matdesc and stamp; everything else as read. */
export function withNewKey(env: Envelope, wrapped: Buffer, matdesc: Record<string, string>, kek: Parameters<typeof makeStamp>[0]): Envelope {
  return {
    dek: { ...env.dek, wrapped, matdesc, kek },
    stamp: makeStamp(kek, wrapped),
    fields: { ...env.fields },
  };
}
