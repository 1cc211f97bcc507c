/**
 * The ciphertext blob of this local KMS and the encryption-context binding.
 *
 * Layout (all offsets in bytes):
 *   0..3    magic "RWK" + format version 0x01
 *   4..19   key id (the uuid's 16 bytes)
 *   20..51  key material id (32 bytes; shown to callers as 64 hex chars)
 *   52..63  AES-GCM IV (random, 12 bytes)
 *   64..n-16 ciphertext
 *   n-16..n GCM tag
 * The AAD is the 52-byte header followed by the canonical encryption context, so neither the
 * key reference nor the context can be changed without the tag failing. Like symmetric AWS KMS,
 * the blob names its key, so Decrypt needs no KeyId. Callers must treat the blob as opaque.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { invalidCiphertext } from './protocol.ts';
import type { SecretBytes } from './secret.ts';

const MAGIC = Buffer.from([0x52, 0x57, 0x4b, 0x01]);
const HEADER_BYTES = 4 + 16 + 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
export const MIN_BLOB_BYTES = HEADER_BYTES + IV_BYTES + 1 + TAG_BYTES;
export const MAX_BLOB_BYTES = 6144;

export interface BlobHeader {
  keyId: string;
  materialId: string;
}

/** Sorted [key, value] pairs as JSON: order-independent, and immune to JS integer-key ordering. */
export function canonicalContext(context: Record<string, string>): Buffer {
  const pairs = Object.entries(context).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return Buffer.from(JSON.stringify(pairs), 'utf8');
}

function uuidToBytes(uuid: string): Buffer {
  return Buffer.from(uuid.replace(/-/g, ''), 'hex');
}

function bytesToUuid(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function encryptBlob(
  header: BlobHeader,
  material: SecretBytes,
  plaintext: Buffer,
  context: Record<string, string>,
): Buffer {
  const head = Buffer.concat([MAGIC, uuidToBytes(header.keyId), Buffer.from(header.materialId, 'hex')]);
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', material.reveal(), iv);
  cipher.setAAD(Buffer.concat([head, canonicalContext(context)]));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([head, iv, body, cipher.getAuthTag()]);
}

/** Reads which key and material a blob claims; InvalidCiphertextException if it is not ours. */
export function readBlobHeader(blob: Buffer): BlobHeader {
  if (blob.length < MIN_BLOB_BYTES || !blob.subarray(0, 4).equals(MAGIC)) {
    throw invalidCiphertext('the ciphertext blob is not a ciphertext of this KMS (bad length or format marker)');
  }
  return { keyId: bytesToUuid(blob.subarray(4, 20)), materialId: blob.subarray(20, HEADER_BYTES).toString('hex') };
}

export function decryptBlob(blob: Buffer, material: SecretBytes, context: Record<string, string>): Buffer {
  const head = blob.subarray(0, HEADER_BYTES);
  const iv = blob.subarray(HEADER_BYTES, HEADER_BYTES + IV_BYTES);
  const body = blob.subarray(HEADER_BYTES + IV_BYTES, blob.length - TAG_BYTES);
  const tag = blob.subarray(blob.length - TAG_BYTES);
  try {
    const decipher = createDecipheriv('aes-256-gcm', material.reveal(), iv);
    decipher.setAAD(Buffer.concat([head, canonicalContext(context)]));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(body), decipher.final()]);
  } catch {
    // Same answer for a tampered blob and a wrong context, as AWS KMS gives: nothing to learn.
    throw invalidCiphertext('the ciphertext does not decrypt: it was altered, or the encryption context differs');
  }
}
