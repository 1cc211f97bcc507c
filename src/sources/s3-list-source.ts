/**
 * All objects under a prefix, via ListObjectsV2; instruction files and probe objects are not items.
 * An instruction file is `<key>.instruction` WITH the marker `x-amz-crypto-instr-file` in its
 * metadata: a listing does not show metadata, so each object whose name ends in `.instruction`
 * costs one HeadObject here. An object that merely has such a name is an item like any other
 * (invariant 7: skipping it would leave it under the KEK, unseen by every check).
 */
import { HeadObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { INSTRUCTION_FILE_MARKER, INSTRUCTION_SUFFIX } from '../envelope/s3ec-v2.ts';
import { isNotFound } from '../stores/s3-errors.ts';
import type { Source, SourcePage } from './source.ts';

/** HeadObject requests in flight per page, for the `.instruction` names of that page. */
const HEAD_CONCURRENCY = 16;

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
    const listed = (out.Contents ?? [])
      .filter((o) => o.Key && !o.Key.startsWith('.rewrap-probe/') && keep(o.LastModified))
      .map((o) => o.Key!);
    const limitHeads = pLimit(HEAD_CONCURRENCY);
    const isItem = await Promise.all(listed.map((k) => (k.endsWith(INSTRUCTION_SUFFIX) ? limitHeads(() => this.isNotInstructionFile(k, signal)) : true)));
    const keys = listed.filter((_, i) => isItem[i]);
    const done = !out.IsTruncated;
    return { groups: [{ storeId: `s3://${this.bucket}`, keys }], cursor: done ? null : out.NextContinuationToken, done };
  }

  /** False only for an instruction file (marked); an object deleted since the listing is no item either. */
  private async isNotInstructionFile(key: string, signal?: AbortSignal): Promise<boolean> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal: signal });
      return !(INSTRUCTION_FILE_MARKER in (head.Metadata ?? {}));
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }
}
