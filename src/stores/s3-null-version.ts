/**
 * Versioning-suspended buckets: S3 keeps at most one version with id "null" per key, and every
 * write there (a self-copy, a PUT of an instruction file) becomes the new null version, replacing
 * the old one for good. When the version a rewrite reads has a real id (written while versioning
 * was enabled), the key's null version, if it has one, is an OLDER copy of the object (or of its
 * instruction file, the envelope of an older copy): the rewrite would destroy it. Measured on Ceph
 * RGW 16, as AWS documents it: null (A, pre-versioning), v1 (B), suspend, self-copy of x: the
 * versions are null (B, new envelope) and v1; A is gone.
 *
 * So before a write in a versioned bucket whose read version has a real id, the store asks
 * whether the bucket is Suspended (GetBucketVersioning, cached briefly per store) and, if it is
 * or cannot tell, whether the key has a null version (HEAD ?versionId=null). One that holds data
 * refuses the item, nothing written: `null-version-would-be-replaced`. A version read as null (or
 * in a bucket never versioned) is replaced in place, as it would be without versioning.
 */
import { GetBucketVersioningCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { permanent } from '../core/errors.ts';
import { s3Url } from '../core/store-id.ts';
import { httpStatus, isNotFound, toItemFailure } from './s3-errors.ts';

/** How long a bucket's versioning status is trusted. A bucket suspended meanwhile is seen this late. */
const STATUS_TTL_MS = 10_000;

export class NullVersionGuard {
  private status?: { at: number; value: Promise<string | Error> };

  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Throws (permanent) if writing `key`, whose current version as read is `readVersionId`, would
   * replace a null version holding data. `where` names the item in the message.
   */
  async check(key: string, readVersionId: string | undefined, where: string, signal?: AbortSignal): Promise<void> {
    if (readVersionId === undefined || readVersionId === 'null') return;
    const status = await this.versioning(signal);
    if (status === 'Enabled') return;
    if (!(await this.hasNullVersion(key, signal))) return;
    const why =
      status instanceof Error
        ? `cannot tell whether versioning is Suspended on bucket ${this.bucket} (GetBucketVersioning: ${status.name}; grant s3:GetBucketVersioning)`
        : `versioning is ${status ? status : 'not Enabled'} on bucket ${this.bucket}`;
    throw permanent(
      'null-version-would-be-replaced',
      `${where}: ${why}, and ${s3Url(this.bucket, key)} has a noncurrent version with id "null" (an older copy S3 keeps); ` +
        'in a versioning-suspended bucket this rewrite would replace that version and it would be lost. Nothing was written. ' +
        'Enable versioning on the bucket (a rewrite then adds a version and replaces none) and run a campaign again.',
    );
  }

  private versioning(signal?: AbortSignal): Promise<string | Error> {
    const t = this.now();
    if (!this.status || t - this.status.at >= STATUS_TTL_MS) {
      const value = this.client
        .send(new GetBucketVersioningCommand({ Bucket: this.bucket }), { abortSignal: signal })
        .then((o) => o.Status ?? '')
        .catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
      this.status = { at: t, value };
      /* A failed read (an abort, a timeout) is asked again by the next write, not trusted for 10 s. */
      void value.then((v) => {
        if (v instanceof Error && this.status?.value === value) this.status = undefined;
      });
    }
    return this.status.value;
  }

  /** Does `key` have a null version that holds data? A null delete marker (405 on HEAD) holds none. */
  private async hasNullVersion(key: string, signal?: AbortSignal): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key, VersionId: 'null' }), { abortSignal: signal });
      return true;
    } catch (err) {
      if (isNotFound(err) || httpStatus(err) === 405) return false;
      throw toItemFailure(err, `HeadObject ${s3Url(this.bucket, key)}?versionId=null`);
    }
  }
}
