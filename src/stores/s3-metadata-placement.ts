/**
 * Envelopes kept in the object's user metadata. S3 metadata cannot be edited in place, so the
 * rewrap copies the object onto itself with `MetadataDirective: 'REPLACE'`: the payload bytes
 * stay on the server, the metadata is the original with only the envelope keys replaced, and
 * every system header a REPLACE copy would reset is sent again; tags are put back if the
 * endpoint dropped them (s3-tags.ts). Large objects go through a
 * multipart copy (s3-multipart-copy.ts). Every write request is fenced (invariant 8).
 */
import { CopyObjectCommand, type S3Client, type Tag } from '@aws-sdk/client-s3';
import { ENVELOPE_KEYS, serializeV2 } from '../envelope/s3ec-v2.ts';
import { LandedWriteError, WriteFencedError, type WriteFence } from './envelope-store.ts';
import type { Envelope } from '../core/envelope.ts';
import { copySource, fencedWrite, withHeaders } from './s3-client.ts';
import { etagAs, type S3Capabilities } from './s3-capabilities.ts';
import { isNotFound, isPreconditionFailed, toItemFailure } from './s3-errors.ts';
import { rewriteInPlaceMultipart } from './s3-multipart-copy.ts';
import type { S3ItemToken } from './s3-object-token.ts';
import { readTags, restoreTagsIfLost, tagsAsQuery } from './s3-tags.ts';
import { s3Url } from '../core/store-id.ts';
import { restoreLockIfLost } from './s3-object-lock.ts';

export interface MetadataWriteOptions {
  multipartThresholdBytes: number;
  partSizeBytes: number;
  partCopyConcurrency: number;
}

/** The user metadata to write: the original with the envelope keys replaced by `next`'s. */
export function nextMetadata(original: Record<string, string>, next: Envelope): Record<string, string> {
  const kept = Object.fromEntries(Object.entries(original).filter(([k]) => !ENVELOPE_KEYS.includes(k)));
  return { ...kept, ...serializeV2(next) };
}

/**
 * Rewrites the envelope in the object's metadata if its content ETag is still the one read.
 * `caps` null means: no precondition at all (the user allowed unconditional writes).
 */
export async function writeMetadataEnvelope(
  client: S3Client,
  bucket: string,
  key: string,
  token: S3ItemToken,
  next: Envelope,
  caps: S3Capabilities | null,
  options: MetadataWriteOptions,
  signal?: AbortSignal,
  fence?: WriteFence,
): Promise<'written' | 'conflict'> {
  const where = s3Url(bucket, key);
  let tags: Tag[] = [];
  try {
    if (token.tagCount > 0) tags = await readTags(client, bucket, key, signal);
  } catch (err) {
    if (isNotFound(err)) return 'conflict';
    throw toItemFailure(err, `GetObjectTagging ${where}`);
  }
  const result = await rewrite(client, bucket, key, token, next, tags, caps, options, signal, fence);
  if (result === 'written') {
    try {
      await restoreTagsIfLost(client, bucket, key, tags, fence);
    } catch (err) {
      /* The envelope write landed: this is the item's outcome (rewrapped, with the problem in its
         audit event), not a batch error. */
      const why = err instanceof WriteFencedError ? 'the batch lease ran out before they could be put back' : 'putting them back failed';
      throw new LandedWriteError(`${where}: the envelope was rewritten, but the self-copy dropped the object's tags and ${why}; the tags were ${tagsAsQuery(tags)}`, { cause: err });
    }
    try {
      await restoreLockIfLost(client, bucket, key, token.headers, fence);
    } catch (err) {
      const why = err instanceof WriteFencedError ? 'the batch lease ran out before it could be put back' : 'putting it back failed';
      const lock = [token.headers.ObjectLockMode && `${token.headers.ObjectLockMode} retention until ${token.headers.ObjectLockRetainUntilDate?.toISOString()}`, token.headers.ObjectLockLegalHoldStatus === 'ON' && 'legal hold'].filter(Boolean).join(', ');
      throw new LandedWriteError(`${where}: the envelope was rewritten, but the self-copy dropped the object's lock and ${why}; the lock was ${lock}`, { cause: err });
    }
  }
  return result;
}

async function rewrite(
  client: S3Client,
  bucket: string,
  key: string,
  token: S3ItemToken,
  next: Envelope,
  tags: Tag[],
  caps: S3Capabilities | null,
  options: MetadataWriteOptions,
  signal?: AbortSignal,
  fence?: WriteFence,
): Promise<'written' | 'conflict'> {
  const metadata = nextMetadata(token.metadata, next);
  const where = s3Url(bucket, key);
  if (token.size > options.multipartThresholdBytes) {
    try {
      return await rewriteInPlaceMultipart(
        client,
        {
          bucket,
          key,
          etag: token.etag,
          size: token.size,
          metadata,
          headers: token.headers,
          tags,
          partSizeBytes: options.partSizeBytes,
          concurrency: options.partCopyConcurrency,
          capabilities: caps,
        },
        signal,
        fence,
      );
    } catch (err) {
      throw toItemFailure(err, `multipart rewrite of ${where}`);
    }
  }
  /* Every precondition the endpoint honours, each in the ETag form it accepts. The destination
     If-Match (AWS) is atomic with the write; the source checks compare the same object just
     before the copy reads it. */
  const checks: { CopySourceIfMatch?: string; IfMatch?: string } = {};
  const legacy: Record<string, string> = {};
  if (caps?.copySourceIfMatch) checks.CopySourceIfMatch = etagAs(caps.copySourceIfMatch, token.etag);
  if (caps?.copyDestinationIfMatch) checks.IfMatch = etagAs(caps.copyDestinationIfMatch, token.etag);
  if (caps?.copyLegacyIfMatch) legacy['x-amz-copy-if-match'] = etagAs(caps.copyLegacyIfMatch, token.etag);
  try {
    await client.send(
      fencedWrite(withHeaders(
        new CopyObjectCommand({
          Bucket: bucket,
          Key: key,
          CopySource: copySource(bucket, key),
          MetadataDirective: 'REPLACE',
          TaggingDirective: 'COPY',
          Metadata: metadata,
          ...token.headers,
          ...checks,
        }),
        legacy,
      ), fence),
      { abortSignal: signal },
    );
    return 'written';
  } catch (err) {
    // A vanished object is a conflict too: the caller re-reads and classifies it as missing.
    if (isPreconditionFailed(err) || isNotFound(err)) return 'conflict';
    throw toItemFailure(err, `CopyObject ${where}`);
  }
}
