/**
 * A reference client for the S3 Encryption Client V2 format, used by the tests and the demo to
 * write objects the way the official clients do and to decrypt them end to end afterwards.
 * Deliberately shares nothing with the rest of src/, so a bug in our envelope code cannot hide
 * itself behind the same bug here. It handles plaintext DEKs: never use it in the pipeline.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { DecryptCommand, EncryptCommand, type KMSClient } from '@aws-sdk/client-kms';

export const CEK = 'AES/GCM/NoPadding';

export type Wrapping =
  | { kind: 'aes'; material: Buffer; matdesc: Record<string, string> }
  | { kind: 'kms'; kms: KMSClient; keyId: string; matdesc: Record<string, string> };

export interface PutOptions {
  placement: 'metadata' | 'instruction';
  wrap: Wrapping;
  contentType?: string;
  userMeta?: Record<string, string>;
  /** Upload in parts of this size (>= 5 MiB except the last). */
  multipartPartBytes?: number;
}

export interface KeyResolver {
  /** AES KEKs by canonical matdesc JSON. */
  aes?: Map<string, Buffer>;
  kms?: KMSClient;
  /** With KMS: the key the blob must be under (Decrypt KeyId); refuses any other. */
  kmsKeyId?: string;
}

export const matdescKey = (m: Record<string, string>): string => JSON.stringify(Object.keys(m).sort().map((k) => [k, m[k]]));

export function aesWrap(kek: Buffer, dek: Buffer): Buffer {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', kek, iv);
  c.setAAD(Buffer.from(CEK));
  const ct = Buffer.concat([c.update(dek), c.final()]);
  return Buffer.concat([iv, ct, c.getAuthTag()]);
}

export function aesUnwrap(kek: Buffer, wrapped: Buffer): Buffer {
  const d = createDecipheriv('aes-256-gcm', kek, wrapped.subarray(0, 12));
  d.setAAD(Buffer.from(CEK));
  d.setAuthTag(wrapped.subarray(wrapped.length - 16));
  return Buffer.concat([d.update(wrapped.subarray(12, wrapped.length - 16)), d.final()]);
}

export async function wrapDek(w: Wrapping, dek: Buffer): Promise<Buffer> {
  if (w.kind === 'aes') return aesWrap(w.material, dek);
  const out = await w.kms.send(
    new EncryptCommand({ KeyId: w.keyId, Plaintext: dek, EncryptionContext: { ...w.matdesc, 'aws:x-amz-cek-alg': CEK } }),
  );
  return Buffer.from(out.CiphertextBlob!);
}

export function encryptPayload(dek: Buffer, payload: Buffer): { iv: Buffer; body: Buffer } {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', dek, iv);
  const body = Buffer.concat([c.update(payload), c.final(), c.getAuthTag()]);
  return { iv, body };
}

export async function envelopeFields(w: Wrapping, dek: Buffer, iv: Buffer, plainLength: number): Promise<Record<string, string>> {
  return {
    'x-amz-key-v2': (await wrapDek(w, dek)).toString('base64'),
    'x-amz-wrap-alg': w.kind === 'aes' ? 'AES/GCM' : 'kms+context',
    'x-amz-cek-alg': CEK,
    'x-amz-iv': iv.toString('base64'),
    'x-amz-matdesc': JSON.stringify(w.kind === 'aes' ? w.matdesc : { ...w.matdesc, 'aws:x-amz-cek-alg': CEK }),
    'x-amz-tag-len': '128',
    'x-amz-unencrypted-content-length': String(plainLength),
  };
}

/** Writes one S3EC V2 object; returns the DEK so a test can compare it after the rewrap. */
export async function putEncrypted(s3: S3Client, bucket: string, key: string, payload: Buffer, o: PutOptions): Promise<{ dek: Buffer }> {
  const dek = randomBytes(32);
  const { iv, body } = encryptPayload(dek, payload);
  const env = await envelopeFields(o.wrap, dek, iv, payload.length);
  const meta = { ...(o.userMeta ?? {}), ...(o.placement === 'metadata' ? env : { 'x-amz-unencrypted-content-length': String(payload.length) }) };
  const contentType = o.contentType ?? 'application/octet-stream';
  if (o.multipartPartBytes) {
    const up = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, Metadata: meta, ContentType: contentType }));
    const parts = [];
    for (let off = 0, n = 1; off < body.length; off += o.multipartPartBytes, n++) {
      const r = await s3.send(
        new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: up.UploadId, PartNumber: n, Body: body.subarray(off, off + o.multipartPartBytes) }),
      );
      parts.push({ PartNumber: n, ETag: r.ETag });
    }
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: up.UploadId, MultipartUpload: { Parts: parts } }));
  } else {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, Metadata: meta, ContentType: contentType }));
  }
  if (o.placement === 'instruction') {
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: `${key}.instruction`,
        Body: JSON.stringify(env),
        Metadata: { 'x-amz-crypto-instr-file': '' },
        ContentType: 'application/json',
      }),
    );
  }
  return { dek };
}

export interface Decrypted {
  payload: Buffer;
  dek: Buffer;
  contentType?: string;
  userMeta: Record<string, string>;
  envelope: Record<string, string>;
}

/** Reads an object the way an S3EC V2 client does and decrypts it with only the given keys. */
export async function getDecrypted(s3: S3Client, bucket: string, key: string, keys: KeyResolver): Promise<Decrypted> {
  const obj = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const body = Buffer.from(await obj.Body!.transformToByteArray());
  const userMeta = obj.Metadata ?? {};
  let envelope: Record<string, string> = userMeta;
  if (!('x-amz-key-v2' in userMeta)) {
    const ins = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: `${key}.instruction` }));
    envelope = JSON.parse(await ins.Body!.transformToString());
  }
  const wrapped = Buffer.from(envelope['x-amz-key-v2']!, 'base64');
  const matdesc = JSON.parse(envelope['x-amz-matdesc']!) as Record<string, string>;
  let dek: Buffer;
  if (envelope['x-amz-wrap-alg'] === 'AES/GCM') {
    const kek = keys.aes?.get(matdescKey(matdesc));
    if (!kek) throw new Error(`no test KEK for matdesc ${JSON.stringify(matdesc)}`);
    dek = aesUnwrap(kek, wrapped);
  } else {
    if (!keys.kms) throw new Error('no KMS client given');
    const out = await keys.kms.send(
      new DecryptCommand({ CiphertextBlob: wrapped, KeyId: keys.kmsKeyId, EncryptionContext: { ...matdesc, 'aws:x-amz-cek-alg': envelope['x-amz-cek-alg']! } }),
    );
    dek = Buffer.from(out.Plaintext!);
  }
  const iv = Buffer.from(envelope['x-amz-iv']!, 'base64');
  const d = createDecipheriv('aes-256-gcm', dek, iv);
  d.setAuthTag(body.subarray(body.length - 16));
  const payload = Buffer.concat([d.update(body.subarray(0, body.length - 16)), d.final()]);
  return { payload, dek, contentType: obj.ContentType, userMeta, envelope };
}

export async function headMeta(s3: S3Client, bucket: string, key: string): Promise<Record<string, string>> {
  return (await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).Metadata ?? {};
}
