/**
 * The token an S3 read hands to the pipeline (opaque to it): everything the conditional write
 * needs to put the object back exactly as it was except for the envelope.
 * Invariant 5: it holds metadata and ETags only; the wrapped DEK in it is ciphertext.
 */
import type { HeadObjectCommandOutput } from '@aws-sdk/client-s3';
import { normalizeEtag } from './s3-client.ts';

/**
 * System headers that a `MetadataDirective: 'REPLACE'` copy (or a multipart rewrite) resets
 * unless they are sent again. ACLs are NOT kept by any copy; see
 * S3EnvelopeStore's doc comment. Tags: see s3-tags.ts.
 */
export interface PreservedHeaders {
  ContentType?: string;
  CacheControl?: string;
  ContentDisposition?: string;
  ContentEncoding?: string;
  ContentLanguage?: string;
  Expires?: Date;
  WebsiteRedirectLocation?: string;
  /** Absent for STANDARD (the default), so a copy never asks for a class it need not. */
  StorageClass?: NonNullable<HeadObjectCommandOutput['StorageClass']>;
  ServerSideEncryption?: NonNullable<HeadObjectCommandOutput['ServerSideEncryption']>;
  SSEKMSKeyId?: string;
  BucketKeyEnabled?: boolean;
  ObjectLockMode?: NonNullable<HeadObjectCommandOutput['ObjectLockMode']>;
  ObjectLockRetainUntilDate?: Date;
  ObjectLockLegalHoldStatus?: NonNullable<HeadObjectCommandOutput['ObjectLockLegalHoldStatus']>;
}

export interface InstructionFileState {
  /** Normalised (unquoted) ETag of `<key>.instruction` as read. */
  etag: string;
  /** Its version id as read (absent in a bucket never versioned, or for a null version on some endpoints). */
  versionId?: string;
  /** Its user metadata (carries `x-amz-crypto-instr-file`), kept on rewrite. */
  metadata: Record<string, string>;
  contentType?: string;
  /** The JSON object as read; keys other than the envelope's are kept on rewrite. */
  json: Record<string, string>;
}

export interface S3ItemToken {
  readonly brand: typeof TOKEN_BRAND;
  placement: 'metadata' | 'instruction';
  /** Normalised (unquoted) ETag of the object as read. */
  etag: string;
  /** The object's version id as read (absent in a bucket never versioned, or for a null version on some endpoints). */
  versionId?: string;
  size: number;
  /** The object's full user metadata as read (lower-case keys, no `x-amz-meta-`). */
  metadata: Record<string, string>;
  headers: PreservedHeaders;
  /** x-amz-tagging-count as read: tags are read and kept only when there are some. */
  tagCount: number;
  instruction?: InstructionFileState;
}

const TOKEN_BRAND = Symbol('S3ItemToken');

export function makeToken(fields: Omit<S3ItemToken, 'brand'>): S3ItemToken {
  return Object.freeze({ ...fields, brand: TOKEN_BRAND });
}

export function isS3ItemToken(token: unknown): token is S3ItemToken {
  return typeof token === 'object' && token !== null && (token as { brand?: unknown }).brand === TOKEN_BRAND;
}

export function preservedHeaders(head: HeadObjectCommandOutput): PreservedHeaders {
  const h: PreservedHeaders = {};
  if (head.ContentType !== undefined) h.ContentType = head.ContentType;
  if (head.CacheControl !== undefined) h.CacheControl = head.CacheControl;
  if (head.ContentDisposition !== undefined) h.ContentDisposition = head.ContentDisposition;
  if (head.ContentEncoding !== undefined) h.ContentEncoding = head.ContentEncoding;
  if (head.ContentLanguage !== undefined) h.ContentLanguage = head.ContentLanguage;
  if (head.Expires instanceof Date && !Number.isNaN(head.Expires.getTime())) h.Expires = head.Expires;
  if (head.WebsiteRedirectLocation !== undefined) h.WebsiteRedirectLocation = head.WebsiteRedirectLocation;
  if (head.StorageClass !== undefined && head.StorageClass !== 'STANDARD') h.StorageClass = head.StorageClass;
  if (head.ServerSideEncryption !== undefined) h.ServerSideEncryption = head.ServerSideEncryption;
  if (head.SSEKMSKeyId !== undefined) h.SSEKMSKeyId = head.SSEKMSKeyId;
  if (head.BucketKeyEnabled !== undefined) h.BucketKeyEnabled = head.BucketKeyEnabled;
  if (head.ObjectLockMode !== undefined) h.ObjectLockMode = head.ObjectLockMode;
  if (head.ObjectLockRetainUntilDate !== undefined) h.ObjectLockRetainUntilDate = head.ObjectLockRetainUntilDate;
  if (head.ObjectLockLegalHoldStatus !== undefined) h.ObjectLockLegalHoldStatus = head.ObjectLockLegalHoldStatus;
  return h;
}

export function objectState(head: HeadObjectCommandOutput): Pick<S3ItemToken, 'etag' | 'versionId' | 'size' | 'metadata' | 'headers' | 'tagCount'> {
  return {
    etag: normalizeEtag(head.ETag),
    ...(head.VersionId !== undefined ? { versionId: head.VersionId } : {}),
    size: head.ContentLength ?? 0,
    metadata: { ...(head.Metadata ?? {}) },
    headers: preservedHeaders(head),
    tagCount: head.TagCount ?? 0,
  };
}
