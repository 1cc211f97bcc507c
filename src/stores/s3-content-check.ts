/**
 * End-to-end check of one S3EC V2 object: its payload decrypts (AES-256-GCM, tag verified) with
 * the given DEK. Used by the canary stage; streams the body, keeps no plaintext.
 */
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createDecipheriv } from 'node:crypto';
import type { Readable } from 'node:stream';
import { V2 } from '../envelope/s3ec-v2.ts';
import type { Envelope } from '../core/envelope.ts';

const TAG_BYTES = 16;

export async function contentDecrypts(client: S3Client, bucket: string, key: string, env: Envelope, dek: Buffer, signal?: AbortSignal): Promise<boolean> {
  const iv = Buffer.from(env.fields[V2.iv] ?? '', 'base64');
  const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
  const decipher = createDecipheriv('aes-256-gcm', dek, iv);
  // The tag is the last 16 bytes of the body: hold back a 16-byte tail while streaming.
  let tail = Buffer.alloc(0);
  for await (const chunk of out.Body as Readable) {
    const buf = Buffer.concat([tail, chunk as Buffer]);
    const cut = Math.max(0, buf.length - TAG_BYTES);
    decipher.update(buf.subarray(0, cut)).fill(0);
    tail = buf.subarray(cut);
  }
  if (tail.length !== TAG_BYTES) return false;
  decipher.setAuthTag(tail);
  try {
    decipher.final().fill(0);
    return true;
  } catch {
    return false;
  }
}
