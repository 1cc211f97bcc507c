/**
 * What an S3 error means for one item: a failed precondition or a vanished object (the caller
 * answers 'conflict'), a transient store failure (retry), access denied (permanent), an archived
 * object (InvalidObjectState, permanent), a request the endpoint does not implement (501,
 * permanent), another 4xx answer about this request (permanent for the item: `store-rejected`,
 * naming the S3 error), or something we do not understand (thrown, wrapped with the item's name: rewrapItem makes it that
 * item's `unexpected-error`).
 */
import { permanent, transient } from '../core/errors.ts';
import { WriteFencedError } from './envelope-store.ts';

interface SdkErrorShape {
  name?: string;
  code?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
}

function shape(err: unknown): SdkErrorShape {
  return typeof err === 'object' && err !== null ? (err as SdkErrorShape) : {};
}

export function httpStatus(err: unknown): number | undefined {
  return shape(err).$metadata?.httpStatusCode;
}

function errorName(err: unknown): string {
  const e = shape(err);
  return e.name ?? e.Code ?? e.code ?? '';
}

export function isPreconditionFailed(err: unknown): boolean {
  return httpStatus(err) === 412 || errorName(err) === 'PreconditionFailed';
}

export function isNotFound(err: unknown): boolean {
  const name = errorName(err);
  return httpStatus(err) === 404 || name === 'NoSuchKey' || name === 'NotFound';
}

export function isAbort(err: unknown): boolean {
  return errorName(err) === 'AbortError';
}

const TRANSIENT_NAMES = new Set([
  'SlowDown',
  'ServiceUnavailable',
  'InternalError',
  'RequestTimeout',
  'RequestTimeTooSkewed',
  'TimeoutError',
  'ThrottlingException',
  'Throttling',
  'ConditionalRequestConflict', // AWS 409: a concurrent conditional write is in flight; retry
]);
const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED', 'EHOSTUNREACH']);

export function isTransientS3Error(err: unknown): boolean {
  const status = httpStatus(err);
  // 501 Not Implemented is an answer, not an outage: the same request gets it again.
  if (status !== undefined && ((status >= 500 && status !== 501) || status === 429)) return true;
  if (TRANSIENT_NAMES.has(errorName(err))) return true;
  const code = shape(err).code;
  return code !== undefined && NETWORK_CODES.has(code);
}

export function isAccessDenied(err: unknown): boolean {
  return httpStatus(err) === 403 || errorName(err) === 'AccessDenied';
}

/**
 * Turns an S3 error that is neither a precondition failure nor a missing object into what the
 * pipeline understands. `what` names the call and the item, e.g. "CopyObject s3://b/k".
 * Abort and fence errors pass through unchanged: the caller asked to stop (invariant 8).
 */
export function toItemFailure(err: unknown, what: string): Error {
  if (isAbort(err) || err instanceof WriteFencedError) return err as Error;
  if (errorName(err) === 'InvalidObjectState') {
    // 403 on AWS, but not an access problem: the object is archived (GLACIER, DEEP_ARCHIVE, an
    // Intelligent-Tiering archive tier) and must be restored before it can be read or copied.
    return permanent('archived-storage-class', `${what}: the object is archived (InvalidObjectState); restore it, or leave it: nothing was modified`, err);
  }
  if (isAccessDenied(err)) {
    return permanent('access-denied', `${what}: S3 refused access (${errorName(err) || 'HTTP 403'}); grant s3:GetObject and s3:PutObject on the bucket`, err);
  }
  if (httpStatus(err) === 501 || errorName(err) === 'NotImplemented') {
    // The endpoint does not implement this request for this object (Ceph RGW before Reef answers
    // 501 to a copy of an SSE-KMS or SSE-C object): the same request fails the same way again.
    return permanent('store-rejected', `${what}: the endpoint does not implement this request for this object (${errorName(err) || 'HTTP 501'}); nothing was modified`, err);
  }
  if (isTransientS3Error(err)) {
    return transient('store-unavailable', `${what}: S3 failed or timed out (${errorName(err) || `HTTP ${httpStatus(err) ?? '?'}`})`, err);
  }
  const status = httpStatus(err);
  if (status !== undefined && status >= 400 && status < 500) {
    // S3 answered, about this request (MetadataTooLarge, InvalidArgument, EntityTooLarge...):
    // sending the same request again gets the same answer, so it is this item's failure alone.
    return permanent('store-rejected', `${what}: S3 refused the request (${errorName(err) || 'no error code'}, HTTP ${status})`, err);
  }
  return new Error(`${what}: unexpected S3 error (${errorName(err) || `HTTP ${httpStatus(err) ?? '?'}`})`, { cause: err });
}
