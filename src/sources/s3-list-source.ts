/**
 * All objects under a prefix, via ListObjectsV2; instruction files and probe objects are not
 * items (instruction-files.ts: one HeadObject per `.instruction` name).
 */
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { itemKeysOf } from './instruction-files.ts';
import type { Source, SourcePage } from './source.ts';
import { s3StoreId } from '../core/store-id.ts';
/** Listings and object times come from the server; allow for clock skew with it. */
const DELTA_SKEW_MS = 5 * 60_000;

export class S3ListSource implements Source {
  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly prefix = '',
  ) {}

  page(cursor: unknown, limit: number, signal?: AbortSignal): Promise<SourcePage> {
    return this.list(cursor, limit, () => true, signal);
  }

  deltaPage(since: Date, cursor: unknown, limit: number, signal?: AbortSignal): Promise<SourcePage> {
    const after = since.getTime() - DELTA_SKEW_MS;
    return this.list(cursor, limit, (modified) => modified === undefined || modified.getTime() >= after, signal);
  }

  private async list(cursor: unknown, limit: number, keep: (m?: Date) => boolean, signal?: AbortSignal): Promise<SourcePage> {
    const token = typeof cursor === 'string' ? cursor : undefined;
    const out = await this.client.send(
      new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix || undefined, ContinuationToken: token, MaxKeys: Math.min(1000, limit) }),
      { abortSignal: signal },
    );
    const listed = (out.Contents ?? []).filter((o) => o.Key && keep(o.LastModified)).map((o) => o.Key!);
    const keys = await itemKeysOf(this.client, this.bucket, listed, signal);
    const done = !out.IsTruncated;
    return { groups: [{ storeId: s3StoreId(this.bucket), keys }], cursor: done ? null : out.NextContinuationToken, done };
  }
}
