/**
 * Object tags across an in-place rewrite. AWS keeps them on a self-copy (TaggingDirective COPY)
 * and sets them from CreateMultipartUpload's Tagging; Ceph RGW drops them on every self-copy,
 * whatever the directive (measured on 16.2.15). So for a tagged object the store
 * reads the tags just before the rewrite and puts them back after it, but only when the copy
 * dropped them: the object had tags and now has none. Tags it finds on the object after the copy
 * are kept as they are, whoever set them: the snapshot never replaces tags the object carries.
 * Tags can drive lifecycle rules: losing them is not cosmetic.
 *
 * What remains on RGW: a tag change made between our snapshot and the copy is dropped by the
 * copy itself, and the snapshot comes back (the copy gives no precondition on tags).
 */
import { GetObjectTaggingCommand, PutObjectTaggingCommand, type S3Client, type Tag } from '@aws-sdk/client-s3';
import type { WriteFence } from './envelope-store.ts';
import { fencedWrite } from './s3-client.ts';

export async function readTags(client: S3Client, bucket: string, key: string, signal?: AbortSignal): Promise<Tag[]> {
  const out = await client.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
  return out.TagSet ?? [];
}

export function tagsAsQuery(tags: Tag[]): string {
  return new URLSearchParams(tags.map((t): [string, string] => [t.Key ?? '', t.Value ?? ''])).toString();
}

/**
 * Puts `tags` (the snapshot taken before the copy) back if the object now has no tags at all.
 * Returns whether it wrote them. Runs after the write succeeded, so it is not under the caller's
 * signal (a half-finished rewrite must not stay half-finished); it is under the fence, like
 * every write (invariant 8).
 */
export async function restoreTagsIfLost(client: S3Client, bucket: string, key: string, tags: Tag[], fence?: WriteFence): Promise<boolean> {
  if (tags.length === 0) return false;
  if ((await readTags(client, bucket, key)).length > 0) return false;
  await client.send(fencedWrite(new PutObjectTaggingCommand({ Bucket: bucket, Key: key, Tagging: { TagSet: tags } }), fence));
  return true;
}
