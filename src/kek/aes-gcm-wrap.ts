/**
 * AES-256-GCM key wrapping as the S3 Encryption Client V2 does it for `AES/GCM`:
 * wrapped = 12-byte IV || ciphertext || 16-byte tag, AAD = UTF-8 of the content cipher name.
 */
import { createCipheriv, createDecipheriv, randomFillSync } from 'node:crypto';

const IV_BYTES = 12;
const TAG_BYTES = 16;

/* IVs come from a pool refilled from the CSPRNG 4 KiB at a time: one randomBytes(12) per item
   cost more than the AES-GCM itself (measured in a worker profile). IVs are public, so the pool
   holds nothing secret; each IV is copied out and never handed out twice. */
const ivPool = Buffer.alloc(4096);
let ivOffset = ivPool.length;

function nextIv(): Buffer {
  if (ivOffset + IV_BYTES > ivPool.length) {
    randomFillSync(ivPool);
    ivOffset = 0;
  }
  const iv = Buffer.from(ivPool.subarray(ivOffset, ivOffset + IV_BYTES));
  ivOffset += IV_BYTES;
  return iv;
}

export function gcmWrap(kek: Buffer, dek: Buffer, aad: string): Buffer {
  const iv = nextIv();
  const cipher = createCipheriv('aes-256-gcm', kek, iv);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const ct = Buffer.concat([cipher.update(dek), cipher.final()]);
  return Buffer.concat([iv, ct, cipher.getAuthTag()]);
}

/** Returns the plaintext DEK, or undefined when authentication fails. Caller zeroes it. */
export function gcmUnwrap(kek: Buffer, wrapped: Buffer, aad: string): Buffer | undefined {
  if (wrapped.length <= IV_BYTES + TAG_BYTES) return undefined;
  const iv = wrapped.subarray(0, IV_BYTES);
  const tag = wrapped.subarray(wrapped.length - TAG_BYTES);
  const ct = wrapped.subarray(IV_BYTES, wrapped.length - TAG_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', kek, iv);
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(tag);
  const out = decipher.update(ct);
  try {
    const rest = decipher.final();
    return rest.length ? Buffer.concat([out, rest]) : out;
  } catch {
    out.fill(0);
    return undefined;
  }
}
