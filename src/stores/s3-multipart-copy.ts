/**
 * Rewrites an object in place with new user metadata when it is too large for one CopyObject
 * (5 GiB on AWS): CreateMultipartUpload with the new metadata and the kept headers and tags,
 * UploadPartCopy from the object itself in ranges, CompleteMultipartUpload. The payload bytes
 * never leave the server. Any failure aborts the upload, so no half-written object can appear.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  UploadPartCopyCommand,
  type CompletedPart,
  type Tag,
  type S3Client,
} from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import type { WriteFence } from './envelope-store.ts';
import { copySource, fencedWrite, normalizeEtag, withHeaders } from './s3-client.ts';
import { etagAs, type S3Capabilities } from './s3-capabilities.ts';
import { isNotFound, isPreconditionFailed } from './s3-errors.ts';
import type { PreservedHeaders } from './s3-object-token.ts';
import { tagsAsQuery } from './s3-tags.ts';

const MAX_PARTS = 10_000;
const MIN_PART_BYTES = 5 * 1024 * 1024;

export interface MultipartRewrite {
  bucket: string;
  key: string;
  /** Normalised ETag of the object as read: every check compares against it. */
  etag: string;
  size: number;
  metadata: Record<string, string>;
  headers: PreservedHeaders;
  /** Set on the new upload (AWS honours it; the caller restores them where it does not). */
  tags: Tag[];
  partSizeBytes: number;
  /** Parallel UploadPartCopy requests. */
  concurrency: number;
  /** null: write without any precondition (the user allowed it); a re-check still runs. */
  capabilities: S3Capabilities | null;
}

/** The part size actually used: at least the requested one, 5 MiB and size / 10,000. */
export function effectivePartSize(size: number, requested: number): number {
  return Math.max(requested, MIN_PART_BYTES, Math.ceil(size / MAX_PARTS));
}

/**
 * Returns 'conflict' when the object changed (ETag) or vanished since it was read: detected by
 * the part-copy source check or Complete's If-Match where the endpoint honours them, and by a
 * HEAD just before completing where Complete's If-Match is not honoured (a window of one
 * round trip remains then; `multipartLevel` says so). Other failures are thrown after the abort.
 * Invariant 8: the fence runs as each request that writes leaves (the upload's creation, every
 * part copy, and the Complete after minutes of part copies), not once before them all.
 */
export async function rewriteInPlaceMultipart(client: S3Client, w: MultipartRewrite, signal?: AbortSignal, fence?: WriteFence): Promise<'written' | 'conflict'> {
  const opts = { abortSignal: signal };
  const caps = w.capabilities;
  const tagging = tagsAsQuery(w.tags);
  const created = await client.send(
    fencedWrite(new CreateMultipartUploadCommand({ Bucket: w.bucket, Key: w.key, Metadata: w.metadata, ...w.headers, ...(tagging ? { Tagging: tagging } : {}) }), fence),
    opts,
  );
  const uploadId = created.UploadId!;
  try {
    const partSize = effectivePartSize(w.size, w.partSizeBytes);
    const limit = pLimit(w.concurrency);
    const ranges: [number, number][] = [];
    for (let start = 0; start < w.size || ranges.length === 0; start += partSize) ranges.push([start, Math.min(start + partSize, w.size) - 1]);
    const parts: CompletedPart[] = await Promise.all(
      ranges.map(([start, end], i) =>
        limit(async () => {
          const base = {
            Bucket: w.bucket,
            Key: w.key,
            UploadId: uploadId,
            PartNumber: i + 1,
            CopySource: copySource(w.bucket, w.key),
            ...(w.size > 0 ? { CopySourceRange: `bytes=${start}-${end}` } : {}),
          };
          const sourceCheck = caps?.partCopySourceIfMatch ? { CopySourceIfMatch: etagAs(caps.partCopySourceIfMatch, w.etag) } : {};
          const legacy: Record<string, string> = caps?.partCopyLegacyIfMatch ? { 'x-amz-copy-if-match': etagAs(caps.partCopyLegacyIfMatch, w.etag) } : {};
          const out = await client.send(fencedWrite(withHeaders(new UploadPartCopyCommand({ ...base, ...sourceCheck }), legacy), fence), opts);
          return { PartNumber: i + 1, ETag: out.CopyPartResult?.ETag };
        }),
      ),
    );
    if (!caps?.completeIfMatch) {
      /* Without If-Match on Complete this is the last point where a concurrent write can be
         seen; parts copied from a changed source are caught here too. */
      const now = await client.send(new HeadObjectCommand({ Bucket: w.bucket, Key: w.key }), opts);
      if (normalizeEtag(now.ETag) !== w.etag) {
        await abort(client, w, uploadId);
        return 'conflict';
      }
    }
    await client.send(
      fencedWrite(
        new CompleteMultipartUploadCommand({
          Bucket: w.bucket,
          Key: w.key,
          UploadId: uploadId,
          MultipartUpload: { Parts: parts },
          ...(caps?.completeIfMatch ? { IfMatch: etagAs(caps.completeIfMatch, w.etag) } : {}),
        }),
        fence,
      ),
      opts,
    );
    return 'written';
  } catch (err) {
    await abort(client, w, uploadId);
    if (isPreconditionFailed(err) || isNotFound(err)) return 'conflict';
    throw err;
  }
}

/** Not under the caller's signal: the upload must be aborted even when the caller gave up. */
async function abort(client: S3Client, w: MultipartRewrite, uploadId: string): Promise<void> {
  await client.send(new AbortMultipartUploadCommand({ Bucket: w.bucket, Key: w.key, UploadId: uploadId })).catch(() => undefined);
}
