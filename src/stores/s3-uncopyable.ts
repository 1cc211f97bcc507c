/**
 * Objects rewrap cannot copy onto themselves (issue 14, point 3), recognised from the HEAD answer
 * before anything is written, each with its own permanent reason code. None of them frees the
 * item from its KEK (invariant 7): the envelope, where HEAD shows it, still names the KEK, and an
 * object whose metadata cannot be read at all may be under any KEK.
 * - archived: storage class GLACIER or DEEP_ARCHIVE, or an Intelligent-Tiering archive tier
 *   (`x-amz-archive-status`). A self-copy needs a readable source (AWS answers InvalidObjectState)
 *   and, even of a restored copy, would rewrite the archived object (a new archive write and, in
 *   versioned buckets, a second archived version): left to the user, who can restore and copy.
 *   GLACIER_IR is readable at once and copied like any other class.
 * - SSE-C: AWS and RGW answer HEAD of such an object with a bare 400 unless the customer key is
 *   sent; a 1-byte ranged GET without the key names the reason in its error body.
 * - requester pays: a 403 to a HEAD that the same HEAD with `x-amz-request-payer: requester`
 *   does not get. That one HEAD is charged to us; nothing else is read or written.
 */
import { GetObjectCommand, HeadObjectCommand, type HeadObjectCommandOutput, type S3Client } from '@aws-sdk/client-s3';
import { matdescReference } from '../envelope/s3ec-v2.ts';
import type { ReadResult } from './envelope-store.ts';
import { httpStatus } from './s3-errors.ts';
import { s3Url } from '../core/store-id.ts';

type Invalid = Extract<ReadResult, { kind: 'invalid' }>;

const ARCHIVED_CLASSES = new Set(['GLACIER', 'DEEP_ARCHIVE']);

/** The reason a readable HEAD shows that the object cannot be copied in place, if any. */
export function uncopyableFromHead(head: HeadObjectCommandOutput, where: string): Invalid | undefined {
  const ref = matdescReference(head.Metadata ?? {});
  const withRef = (i: Invalid): Invalid => (ref ? { ...i, kekReference: ref } : i);
  if (head.SSECustomerAlgorithm !== undefined) {
    return withRef({ kind: 'invalid', reason: 'sse-c-object', detail: `${where}: encrypted with a customer-provided key (SSE-C); a self-copy needs that key, which rewrap does not hold; nothing was modified` });
  }
  const archive = head.ArchiveStatus;
  if (archive !== undefined || ARCHIVED_CLASSES.has(head.StorageClass ?? '')) {
    const what = archive !== undefined ? `in the Intelligent-Tiering tier ${archive}` : `in storage class ${head.StorageClass}`;
    return withRef({
      kind: 'invalid',
      reason: 'archived-storage-class',
      detail: `${where}: ${what}; a self-copy would need it restored and would rewrite the archived object; nothing was modified (restore it and copy it to a readable class, then rewrap)`,
    });
  }
  return undefined;
}

/**
 * Called when HEAD failed with `err`: the reason code if the failure is one of the cases above,
 * else undefined (the caller reports the HEAD error as it is).
 */
export async function uncopyableFromHeadError(
  client: S3Client,
  bucket: string,
  key: string,
  err: unknown,
  requesterPays: boolean,
  signal?: AbortSignal,
): Promise<Invalid | undefined> {
  const where = s3Url(bucket, key);
  const status = httpStatus(err);
  if (status === 400 && (await needsCustomerKey(client, bucket, key, signal))) {
    return { kind: 'invalid', reason: 'sse-c-object', detail: `${where}: encrypted with a customer-provided key (SSE-C): S3 refuses to show it without that key, which rewrap does not hold; nothing was modified` };
  }
  if (status === 403 && !requesterPays && (await readableAsRequester(client, bucket, key, signal))) {
    return {
      kind: 'invalid',
      reason: 'requester-pays',
      detail: `${where}: the bucket charges the requester for reads and copies; set "requesterPays": true on the campaign's s3 source to accept the charges; nothing was modified`,
    };
  }
  return undefined;
}

async function needsCustomerKey(client: S3Client, bucket: string, key: string, signal?: AbortSignal): Promise<boolean> {
  try {
    const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: 'bytes=0-0' }), { abortSignal: signal });
    await r.Body?.transformToByteArray();
    return false;
  } catch (e) {
    // AWS: InvalidRequest "The object was stored using a form of Server Side Encryption. The
    // correct parameters must be provided..."; RGW: InvalidArgument "Requests specifying Server
    // Side Encryption with Customer provided keys must provide a valid encryption algorithm."
    const message = e instanceof Error ? e.message : '';
    return httpStatus(e) === 400 && /server side encryption/i.test(message);
  }
}

async function readableAsRequester(client: S3Client, bucket: string, key: string, signal?: AbortSignal): Promise<boolean> {
  try {
    await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key, RequestPayer: 'requester' }), { abortSignal: signal });
    return true;
  } catch {
    return false;
  }
}
