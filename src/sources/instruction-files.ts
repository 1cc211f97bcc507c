/**
 * Which listed S3 keys are items: not rewrap's probe objects, and not instruction files. An
 * instruction file is `<key>.instruction` WITH the marker `x-amz-crypto-instr-file` in its
 * metadata: a listing (or an inventory) does not show metadata, so each key ending in
 * `.instruction` costs one HeadObject here. An object that merely has such a name is an item like
 * any other (invariant 7: skipping it would leave it under the KEK, unseen by every check).
 */
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { INSTRUCTION_FILE_MARKER, INSTRUCTION_SUFFIX } from '../envelope/s3ec-v2.ts';
import { isNotFound } from '../stores/s3-errors.ts';

/** HeadObject requests in flight per page, for the `.instruction` names of that page. */
const HEAD_CONCURRENCY = 16;

export const PROBE_PREFIX = '.rewrap-probe/';

/**
 * What to do with the `.instruction` names of a page: 'check' HEADs each one (an unmarked one is
 * an item); 'later' leaves them all out, unchecked, for a pass that checks them (S3ListSource's
 * delta pass, for the planner only).
 */
export type InstructionNames = 'check' | 'later';

export const isInstructionName = (key: string) => key.endsWith(INSTRUCTION_SUFFIX);

export async function itemKeysOf(client: S3Client, bucket: string, listed: string[], signal?: AbortSignal, names: InstructionNames = 'check'): Promise<string[]> {
  const keys = listed.filter((k) => !k.startsWith(PROBE_PREFIX));
  if (names === 'later') return keys.filter((k) => !isInstructionName(k));
  const limitHeads = pLimit(HEAD_CONCURRENCY);
  const isItem = await Promise.all(keys.map((k) => (isInstructionName(k) ? limitHeads(() => isNotInstructionFile(client, bucket, k, signal)) : true)));
  return keys.filter((_, i) => isItem[i]);
}

/** False only for an instruction file (marked); an object deleted since the listing is no item either. */
async function isNotInstructionFile(client: S3Client, bucket: string, key: string, signal?: AbortSignal): Promise<boolean> {
  try {
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
    return !(INSTRUCTION_FILE_MARKER in (head.Metadata ?? {}));
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}
