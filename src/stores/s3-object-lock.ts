/**
 * Object lock across an in-place rewrite. S3 gives a copy the lock settings sent with it
 * (x-amz-object-lock-mode, -retain-until-date, -legal-hold), else the bucket's default
 * retention; the self-copy sends the ones HEAD reported (s3-object-token.ts). Ceph RGW 16 ignores
 * those headers on CopyObject (measured on 16.2.15: the new version gets only the bucket default
 * retention, or nothing), so a locked object's new current version would be unlocked. The store
 * therefore reads the new version's lock after the copy and puts back what the copy dropped: the
 * legal hold, and the retention when the new version has none or a shorter one (a retention
 * already past is not renewed). The previous version keeps its own lock; the noncurrent sweep
 * honours it (noncurrent-sweep.ts).
 */
import { HeadObjectCommand, PutObjectLegalHoldCommand, PutObjectRetentionCommand, type S3Client } from '@aws-sdk/client-s3';
import type { WriteFence } from './envelope-store.ts';
import { fencedWrite } from './s3-client.ts';
import type { PreservedHeaders } from './s3-object-token.ts';

/** Whether `headers` (the object's lock before the copy) hold anything to carry. */
export const hasLock = (h: PreservedHeaders, now: Date) =>
  h.ObjectLockLegalHoldStatus === 'ON' || (h.ObjectLockMode !== undefined && h.ObjectLockRetainUntilDate !== undefined && h.ObjectLockRetainUntilDate.getTime() > now.getTime());

/**
 * Puts back on the current version the lock the copy dropped. Returns what it put back (empty:
 * nothing was missing). Runs after the write succeeded, under the fence (invariant 8), not under
 * the caller's signal (a half-finished rewrite must not stay half-finished).
 */
export async function restoreLockIfLost(client: S3Client, bucket: string, key: string, before: PreservedHeaders, fence?: WriteFence, now = new Date()): Promise<string[]> {
  if (!hasLock(before, now)) return [];
  const after = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  const restored: string[] = [];
  if (before.ObjectLockLegalHoldStatus === 'ON' && after.ObjectLockLegalHoldStatus !== 'ON') {
    await client.send(fencedWrite(new PutObjectLegalHoldCommand({ Bucket: bucket, Key: key, VersionId: after.VersionId, LegalHold: { Status: 'ON' } }), fence));
    restored.push('legal hold');
  }
  const until = before.ObjectLockRetainUntilDate;
  if (before.ObjectLockMode && until && until.getTime() > now.getTime() && (after.ObjectLockMode === undefined || (after.ObjectLockRetainUntilDate?.getTime() ?? 0) < until.getTime())) {
    await client.send(
      fencedWrite(new PutObjectRetentionCommand({ Bucket: bucket, Key: key, VersionId: after.VersionId, Retention: { Mode: before.ObjectLockMode, RetainUntilDate: until } }), fence),
    );
    restored.push(`${before.ObjectLockMode} retention until ${until.toISOString()}`);
  }
  return restored;
}
