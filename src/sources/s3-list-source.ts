/**
 * All objects under a prefix, via ListObjectsV2; instruction files and probe objects are not
 * items (instruction-files.ts: one HeadObject per `.instruction` name).
 *
 * `instructionChecksInDeltaPass` (the planner's sources): the first pass leaves every
 * `.instruction` name out unchecked, and every delta pass checks every one it lists, modified
 * or not. A campaign's own workers rewrite each instruction file they move, so a delta pass
 * checked each of them anyway: the plan's HeadObject was the second one, half of the scheduler's
 * work on such buckets (README, Performance). An unmarked `<key>.instruction` (an item) is then
 * planned by the delta pass, which every campaign runs before it completes; the retirement gate
 * counts a campaign cancelled before it as one that did not list its scope (kek-retirement.ts).
 * `instructionFilesSeen` makes most of those checks free: a listed `<key>.instruction` whose ETag
 * is the one the campaign's worker recorded for `<key>` (the file as it read it marked, or wrote
 * it keeping the marker: migration 8) holds those same bytes, and needs no HeadObject.
 */
import { ListObjectsV2Command, type S3Client, type _Object } from '@aws-sdk/client-s3';
import { INSTRUCTION_SUFFIX } from '../envelope/s3ec-v2.ts';
import { normalizeEtag } from '../stores/s3-client.ts';
import { isInstructionName, itemKeysOf, type InstructionNames } from './instruction-files.ts';
import type { Source, SourcePage } from './source.ts';
import { s3StoreId } from '../core/store-id.ts';
/** Listings and object times come from the server; allow for clock skew with it. */
const DELTA_SKEW_MS = 5 * 60_000;

export interface S3ListSourceOptions {
  /** See the file header. Default false: every pass checks the names it lists (dry runs, retirement's full pass). */
  instructionChecksInDeltaPass?: boolean;
  /** Item keys -> the ETag of their marked instruction file as the campaign's workers left it (instructionFilesSeen). */
  instructionFilesSeen?: (itemKeys: string[]) => Promise<Map<string, string>>;
}

export class S3ListSource implements Source {
  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly prefix = '',
    private readonly options: S3ListSourceOptions = {},
  ) {}

  page(cursor: unknown, limit: number, signal?: AbortSignal): Promise<SourcePage> {
    return this.list(cursor, limit, () => true, this.options.instructionChecksInDeltaPass ? 'later' : 'check', signal);
  }

  deltaPage(since: Date, cursor: unknown, limit: number, signal?: AbortSignal): Promise<SourcePage> {
    const after = since.getTime() - DELTA_SKEW_MS;
    const everyInstructionName = this.options.instructionChecksInDeltaPass === true;
    const keep = (key: string, modified?: Date) => modified === undefined || modified.getTime() >= after || (everyInstructionName && isInstructionName(key));
    return this.list(cursor, limit, keep, 'check', signal, this.options.instructionFilesSeen);
  }

  private async list(
    cursor: unknown,
    limit: number,
    keep: (key: string, m?: Date) => boolean,
    names: InstructionNames,
    signal?: AbortSignal,
    seen?: S3ListSourceOptions['instructionFilesSeen'],
  ): Promise<SourcePage> {
    const token = typeof cursor === 'string' ? cursor : undefined;
    const out = await this.client.send(
      new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix || undefined, ContinuationToken: token, MaxKeys: Math.min(1000, limit) }),
      { abortSignal: signal },
    );
    const contents = (out.Contents ?? []).filter((o) => o.Key && keep(o.Key, o.LastModified));
    const known = seen ? await knownInstructionFiles(contents, seen) : new Set<string>();
    const listed = contents.map((o) => o.Key!).filter((k) => !known.has(k));
    const keys = await itemKeysOf(this.client, this.bucket, listed, signal, names);
    const done = !out.IsTruncated;
    return { groups: [{ storeId: s3StoreId(this.bucket), keys }], cursor: done ? null : out.NextContinuationToken, done };
  }
}

/** The listed `.instruction` names whose ETag is the one recorded for their item (see the file header). */
async function knownInstructionFiles(contents: _Object[], seen: NonNullable<S3ListSourceOptions['instructionFilesSeen']>): Promise<Set<string>> {
  const named = contents.filter((o) => isInstructionName(o.Key!));
  if (named.length === 0) return new Set();
  const itemOf = (name: string) => name.slice(0, -INSTRUCTION_SUFFIX.length);
  const etags = await seen(named.map((o) => itemOf(o.Key!)));
  return new Set(
    named
      .filter((o) => {
        const etag = normalizeEtag(o.ETag);
        return etag !== '' && etags.get(itemOf(o.Key!)) === etag;
      })
      .map((o) => o.Key!),
  );
}
