/**
 * The buckets of a spec whose versioning is Suspended, for a warning at `campaign create`: there a
 * rewrite of an object written while versioning was on would replace the key's older null
 * version, so those objects fail as null-version-would-be-replaced (s3-null-version.ts). The
 * buckets of an s3-manifest are known only once it is read: not named here. A bucket
 * whose status cannot be read is not named: the worker checks again before every such write.
 */
import { GetBucketVersioningCommand } from '@aws-sdk/client-s3';
import type { CampaignSpec } from '../core/campaign-spec.ts';
import type { Resources } from '../runtime/resources.ts';

export async function suspendedBuckets(res: Resources, spec: CampaignSpec, signal?: AbortSignal): Promise<string[]> {
  const buckets = [...new Set(spec.sources.flatMap((s) => (s.type === 's3' || s.type === 's3-inventory' ? [s.bucket] : [])))];
  const status = await Promise.all(
    buckets.map((b) =>
      res
        .s3ClientFor(b, [spec])
        .send(new GetBucketVersioningCommand({ Bucket: b }), { abortSignal: signal })
        .then((o) => o.Status)
        .catch(() => undefined),
    ),
  );
  return buckets.filter((_, i) => status[i] === 'Suspended');
}

export function suspendedWarning(buckets: string[]): string {
  return (
    `warning: versioning is Suspended on ${buckets.map((b) => `s3://${b}`).join(', ')}: an object whose current version was written while versioning was on ` +
    'and that also has an older "null" version cannot be rewritten without replacing that version, so it fails as null-version-would-be-replaced ' +
    '(nothing written) and keeps the KEK from retirement; enable versioning on the bucket first to rewrite it\n'
  );
}
