/**
 * Envelopes kept in the object's user metadata. S3 metadata cannot be edited in place, so the
 * rewrap copies the object onto itself with `MetadataDirective: 'REPLACE'`: the payload bytes
 * stay on the server, the metadata is the original with only the envelope keys replaced, and
 * every system header a REPLACE copy would reset is sent again; tags are put back if the
 * endpoint dropped them (s3-tags.ts). Large objects go through a
 * multipart copy (s3-multipart-copy.ts).
 */
import { CopyObjectCommand, type S3Client, type Tag } from '@aws-sdk/client-s3';
import { ENVELOPE_KEYS, serializeV2 } from '../envelope/s3ec-v2.ts';
import type { Envelope } from './envelope-store.ts';
import { copySource, withHeaders } from './s3-client.ts';
import { etagAs, type S3Capabilities } from './s3-capabilities.ts';
import { isNotFound, isPreconditionFailed, toItemFailure } from './s3-errors.ts';
import { rewriteInPlaceMultipart } from './s3-multipart-copy.ts';
import type { S3ItemToken } from './s3-object-token.ts';
import { readTags, restoreTagsIfLost, tagsAsQuery } from './s3-tags.ts';

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
): Promise<'written' | 'conflict'> {
  const where = `s3://${bucket}/${key}`;
  let tags: Tag[] = [];
  try {
    if (token.tagCount > 0) tags = await readTags(client, bucket, key, signal);
  } catch (err) {
    if (isNotFound(err)) return 'conflict';
    throw toItemFailure(err, `GetObjectTagging ${where}`);
  }
  const result = await rewrite(client, bucket, key, token, next, tags, caps, options, signal);
  if (result === 'written') {
    try {
      await restoreTagsIfLost(client, bucket, key, tags);
    } catch (err) {
      throw new Error(`${where}: the envelope was rewritten but the copy dropped its tags and putting them back failed; the tags were ${tagsAsQuery(tags)}`, { cause: err });
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
): Promise<'written' | 'conflict'> {
  const metadata = nextMetadata(token.metadata, next);
  const where = `s3://${bucket}/${key}`;
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
      withHeaders(
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
      ),
      { abortSignal: signal },
    );
    return 'written';
  } catch (err) {
    // A vanished object is a conflict too: the caller re-reads and classifies it as missing.
    if (isPreconditionFailed(err) || isNotFound(err)) return 'conflict';
    throw toItemFailure(err, `CopyObject ${where}`);
  }
}
