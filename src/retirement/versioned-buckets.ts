/**
 * Invariant 7 for versioned buckets, until rewrap counts noncurrent versions itself: a rewrite
 * of an object in a versioned (or versioning-suspended) bucket leaves the previous version behind,
 * and its DEK stays wrapped under the old KEK. rewrap does not list or count those versions yet,
 * so it cannot tell whether a KEK is still needed there; "cannot tell" counts as "still needs it".
 * A bucket whose versioning state cannot be read blocks for the same reason.
 */
import { GetBucketVersioningCommand, type S3Client } from '@aws-sdk/client-s3';

export const ALLOW_NONCURRENT_FLAG = '--allow-noncurrent-versions';

/** The buckets among store ids (`s3://<bucket>`), each once. */
export function bucketsOf(storeIds: Iterable<string>): string[] {
  const buckets = new Set<string>();
  for (const id of storeIds) if (id.startsWith('s3://')) buckets.add(id.slice('s3://'.length));
  return [...buckets].sort();
}

/** One blocker per bucket that keeps (or may keep) old versions of the objects rewrap rewrote. */
export async function versionedBucketBlockers(s3: S3Client, buckets: string[], kekName: string, signal?: AbortSignal): Promise<string[]> {
  const blockers: string[] = [];
  for (const bucket of buckets) {
    let status: string | undefined;
    try {
      status = (await s3.send(new GetBucketVersioningCommand({ Bucket: bucket }), { abortSignal: signal })).Status;
    } catch (err) {
      const name = (err as { name?: string }).name ?? 'error';
      blockers.push(`s3://${bucket}: cannot tell whether the bucket keeps old object versions (GetBucketVersioning: ${name}); grant s3:GetBucketVersioning, or ${ALLOW_NONCURRENT_FLAG} if you know it does not`);
      continue;
    }
    if (status === 'Enabled' || status === 'Suspended') {
      blockers.push(
        `s3://${bucket}: versioning is ${status}: every rewrite left a noncurrent version whose DEK is still under ${kekName}, ` +
          `and rewrap does not count noncurrent versions yet; delete those versions (or accept losing them) and retire with ${ALLOW_NONCURRENT_FLAG}`,
      );
    }
  }
  return blockers;
}
