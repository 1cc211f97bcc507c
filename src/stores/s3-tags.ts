/**
 * Object tags across an in-place rewrite. AWS keeps them on a self-copy (TaggingDirective COPY)
 * and sets them from CreateMultipartUpload's Tagging; Ceph RGW 16 drops them in both cases
 * (measured). So for a tagged object the store reads the tags before the rewrite and puts them
 * back after it if they are gone. Tags can drive lifecycle rules: losing them is not cosmetic.
 */
import { GetObjectTaggingCommand, PutObjectTaggingCommand, type S3Client, type Tag } from '@aws-sdk/client-s3';

export async function readTags(client: S3Client, bucket: string, key: string, signal?: AbortSignal): Promise<Tag[]> {
  const out = await client.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
  return out.TagSet ?? [];
}

export function tagsAsQuery(tags: Tag[]): string {
  return new URLSearchParams(tags.map((t): [string, string] => [t.Key ?? '', t.Value ?? ''])).toString();
}

function sameTags(a: Tag[], b: Tag[]): boolean {
  const norm = (tags: Tag[]) => JSON.stringify(tags.map((t) => [t.Key, t.Value]).sort());
  return norm(a) === norm(b);
}

/**
 * Postcondition: the object carries `tags` after our rewrite. Runs after the write succeeded,
 * so it is not under the caller's signal: a half-finished rewrite must not stay half-finished.
 */
export async function restoreTagsIfLost(client: S3Client, bucket: string, key: string, tags: Tag[]): Promise<void> {
  if (tags.length === 0) return;
  if (sameTags(await readTags(client, bucket, key), tags)) return;
  await client.send(new PutObjectTaggingCommand({ Bucket: bucket, Key: key, Tagging: { TagSet: tags } }));
}
