/**
 * Which compare-and-swap an S3 endpoint really gives, found by trying: S3-compatible servers
 * differ (Ceph RGW ignores `x-amz-copy-source-if-match` but honours the legacy
 * `x-amz-copy-if-match`; AWS has destination If-Match on CopyObject since 2025; RGW's PutObject
 * If-Match only matches an unquoted ETag). We probe once per (endpoint, bucket) on a scratch
 * object under `.rewrap-probe/` and use the strongest check for each kind of write.
 *
 * A check counts as honoured only if a request with a WRONG ETag fails with 412 and leaves the
 * object unchanged, AND the same request with the right ETag succeeds (in the ETag form found).
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  ListObjectVersionsCommand,
  HeadObjectCommand,
  PutObjectCommand,
  UploadPartCopyCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import type { CasLevel } from './envelope-store.ts';
import { copySource, normalizeEtag, quoteEtag, withHeaders } from './s3-client.ts';
import { isPreconditionFailed, isTransientS3Error, isAccessDenied, toItemFailure, isAbort } from './s3-errors.ts';
import { s3StoreId, s3Url } from '../core/store-id.ts';

/** How the ETag must be written for a check to match: honoured in that form, or not at all. */
export type EtagCheck = 'quoted' | 'unquoted' | false;

export interface S3Capabilities {
  bucket: string;
  endpoint: string;
  /** CopyObject `x-amz-copy-source-if-match` (the standard source precondition). */
  copySourceIfMatch: EtagCheck;
  /** CopyObject legacy `x-amz-copy-if-match` (Ceph RGW honours this one). */
  copyLegacyIfMatch: EtagCheck;
  /** CopyObject `If-Match` on the destination (AWS since 2025): atomic with the write. */
  copyDestinationIfMatch: EtagCheck;
  /** UploadPartCopy `x-amz-copy-source-if-match`. */
  partCopySourceIfMatch: EtagCheck;
  /** UploadPartCopy legacy `x-amz-copy-if-match`. */
  partCopyLegacyIfMatch: EtagCheck;
  /** CompleteMultipartUpload `If-Match` on the destination: atomic with the write. */
  completeIfMatch: EtagCheck;
  /** PutObject `If-Match` (instruction files). */
  putIfMatch: EtagCheck;
}

const WRONG_ETAG = 'ffffffffffffffffffffffffffffffff';
const PROBE_PREFIX = '.rewrap-probe/';

/** The compare-and-swap for an in-place metadata rewrite by one CopyObject. */
export function copyLevel(c: S3Capabilities): CasLevel {
  return c.copyDestinationIfMatch || c.copySourceIfMatch || c.copyLegacyIfMatch ? 'content' : 'none';
}

/** The compare-and-swap for an in-place rewrite by multipart copy (objects over the threshold). */
export function multipartLevel(c: S3Capabilities): CasLevel {
  return c.completeIfMatch || c.partCopySourceIfMatch || c.partCopyLegacyIfMatch ? 'content' : 'none';
}

/** The compare-and-swap for rewriting an instruction file (its ETag changes with every rewrap). */
export function instructionLevel(c: S3Capabilities): CasLevel {
  return c.putIfMatch ? 'envelope' : 'none';
}

export function etagAs(form: 'quoted' | 'unquoted', etag: string): string {
  return form === 'quoted' ? quoteEtag(etag) : normalizeEtag(etag);
}

/** Plain words for the demo and the README: what protection this endpoint gives. */
export function describeCapabilities(c: S3Capabilities): string[] {
  const how = (check: EtagCheck, what: string) => (check ? `${what} (ETag ${check})` : undefined);
  const copy = [how(c.copyDestinationIfMatch, 'destination If-Match'), how(c.copySourceIfMatch, 'x-amz-copy-source-if-match'), how(c.copyLegacyIfMatch, 'legacy x-amz-copy-if-match')].filter(Boolean);
  const part = [how(c.completeIfMatch, 'CompleteMultipartUpload If-Match'), how(c.partCopySourceIfMatch, 'UploadPartCopy x-amz-copy-source-if-match'), how(c.partCopyLegacyIfMatch, 'UploadPartCopy legacy x-amz-copy-if-match')].filter(Boolean);
  const lines = [`${s3StoreId(c.bucket)} at ${c.endpoint}:`];
  lines.push(
    copy.length
      ? `metadata envelopes: compare-and-swap on the object's content ETag via ${copy.join(', ')}; a concurrent content write is refused, a concurrent metadata-only change is not detected` +
          (c.copyDestinationIfMatch ? '' : '; the check is on the copy source, so a write landing between the check and the copy can still be lost')
      : 'metadata envelopes: NO compare-and-swap (the endpoint ignores every copy precondition); writes only with allowUnconditionalWrites',
  );
  lines.push(
    part.length
      ? `large objects (multipart copy): ${part.join(', ')}` + (c.completeIfMatch ? '' : '; plus a re-check of the ETag just before completing (a small window remains)')
      : 'large objects (multipart copy): NO compare-and-swap; writes only with allowUnconditionalWrites',
  );
  lines.push(
    c.putIfMatch
      ? `instruction files: compare-and-swap on the instruction file's ETag via PutObject If-Match (ETag ${c.putIfMatch}); every concurrent change is refused`
      : 'instruction files: NO compare-and-swap (PutObject If-Match is ignored); writes only with allowUnconditionalWrites',
  );
  return lines;
}

/**
 * Probes `bucket`; needs s3:PutObject, s3:GetObject and s3:DeleteObject on `.rewrap-probe/*`, and
 * in a versioned bucket s3:ListBucketVersions and s3:DeleteObjectVersion to leave no version behind.
 */
export async function probeS3Capabilities(client: S3Client, bucket: string, signal?: AbortSignal): Promise<S3Capabilities> {
  const endpoint = await describeEndpoint(client);
  const key = `${PROBE_PREFIX}${randomBytes(8).toString('hex')}`;
  const scratchKey = `${key}.mpu`;
  const body = Buffer.from('rewrap capability probe\n');
  const opts = { abortSignal: signal };
  const what = `capability probe ${s3Url(bucket, key)}`;
  let n = 0;
  const head = async () => client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), opts);
  /** Runs `attempt` with a wrong ETag, then the right one; `attempt` writes metadata probe=<marker>. */
  const check = async (attempt: (etag: string, marker: string) => Promise<unknown>, mutatesObject = true): Promise<EtagCheck> => {
    const marker = `m${++n}`;
    try {
      await attempt(quoteEtag(WRONG_ETAG), marker);
      return false; // went through despite the wrong ETag: ignored
    } catch (err) {
      if (!isPreconditionFailed(err)) return rethrowOrFalse(err, what);
    }
    if (mutatesObject && (await head()).Metadata?.probe === marker) return false;
    for (const form of ['quoted', 'unquoted'] as const) {
      const current = normalizeEtag((await head()).ETag);
      try {
        await attempt(etagAs(form, current), `${marker}-${form}`);
        return form;
      } catch (err) {
        if (!isPreconditionFailed(err)) return rethrowOrFalse(err, what);
      }
    }
    return false; // refuses even the right ETag: unusable
  };
  const copy = (kind: 'source' | 'legacy' | 'destination') => (etag: string, marker: string) => {
    const input = { Bucket: bucket, Key: key, CopySource: copySource(bucket, key), MetadataDirective: 'REPLACE' as const, Metadata: { probe: marker } };
    if (kind === 'source') return client.send(new CopyObjectCommand({ ...input, CopySourceIfMatch: etag }), opts);
    if (kind === 'destination') return client.send(new CopyObjectCommand({ ...input, IfMatch: etag }), opts);
    return client.send(withHeaders(new CopyObjectCommand(input), { 'x-amz-copy-if-match': etag }), opts);
  };
  const uploads: string[] = [];
  const partCopy = (field: 'standard' | 'legacy') => async (etag: string) => {
    const up = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: scratchKey }), opts);
    uploads.push(up.UploadId!);
    const input = { Bucket: bucket, Key: scratchKey, UploadId: up.UploadId, PartNumber: 1, CopySource: copySource(bucket, key) };
    const cmd = field === 'standard' ? new UploadPartCopyCommand({ ...input, CopySourceIfMatch: etag }) : withHeaders(new UploadPartCopyCommand(input), { 'x-amz-copy-if-match': etag });
    return client.send(cmd, opts);
  };
  const complete = async (etag: string, marker: string) => {
    const up = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, Metadata: { probe: marker } }), opts);
    uploads.push(up.UploadId!);
    const part = await client.send(new UploadPartCopyCommand({ Bucket: bucket, Key: key, UploadId: up.UploadId, PartNumber: 1, CopySource: copySource(bucket, key) }), opts);
    return client.send(
      new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: up.UploadId, IfMatch: etag, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.CopyPartResult?.ETag }] } }),
      opts,
    );
  };
  const put = (etag: string, marker: string) => client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, Metadata: { probe: marker }, IfMatch: etag }), opts);

  try {
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, Metadata: { probe: 'initial' } }), opts);
    return {
      bucket,
      endpoint,
      copySourceIfMatch: await check(copy('source')),
      copyLegacyIfMatch: await check(copy('legacy')),
      copyDestinationIfMatch: await check(copy('destination')),
      partCopySourceIfMatch: await check(partCopy('standard'), false),
      partCopyLegacyIfMatch: await check(partCopy('legacy'), false),
      completeIfMatch: await check(complete),
      putIfMatch: await check(put),
    };
  } finally {
    /* Postcondition: the probe leaves nothing behind, whatever happened. Not under `signal`:
       cleanup must run even when the caller gave up. */
    for (const uploadId of uploads) {
      for (const k of [key, scratchKey]) {
        await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: k, UploadId: uploadId })).catch(() => undefined);
      }
    }
    await removeProbeObject(client, bucket, key);
  }
}

/**
 * In a versioned bucket a plain delete only stacks a delete marker on the probe's versions, so
 * every version and marker under the probe key is deleted by id. Without the permission to list
 * versions (s3:ListBucketVersions), the plain delete is what is left.
 */
async function removeProbeObject(client: S3Client, bucket: string, key: string): Promise<void> {
  let plain = true;
  try {
    const page = await client.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: key }));
    const entries = [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])].filter((v) => v.Key?.startsWith(key));
    const byId = entries.filter((v) => v.VersionId && v.VersionId !== 'null');
    plain = byId.length < entries.length || entries.length === 0;
    for (const v of byId) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: v.Key, VersionId: v.VersionId })).catch(() => undefined);
  } catch {
    plain = true;
  }
  if (plain) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })).catch(() => undefined);
}

function rethrowOrFalse(err: unknown, what: string): false {
  // A server that rejects the header outright (400/501) does not honour it; anything that
  // says the server is unwell or we may not write must not be mistaken for "not supported".
  if (isAbort(err) || isTransientS3Error(err) || isAccessDenied(err)) throw toItemFailure(err, what);
  return false;
}

async function describeEndpoint(client: S3Client): Promise<string> {
  const ep = client.config.endpoint ? await client.config.endpoint() : undefined;
  if (ep) return `${ep.protocol}//${ep.hostname}${ep.port ? `:${ep.port}` : ''}${ep.path === '/' ? '' : ep.path}`;
  return `AWS S3 (${await client.config.region()})`;
}
