/**
 * Envelopes kept in an instruction file: `<key>.instruction`, a JSON object of strings holding
 * the envelope keys, with user metadata `x-amz-crypto-instr-file` (S3 Encryption Client V2).
 * The object itself is never touched; the rewrap replaces the instruction file only, with
 * PutObject If-Match on its ETag, which changes with every write: a true compare-and-swap.
 */
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ENVELOPE_KEYS, INSTRUCTION_FILE_MARKER, INSTRUCTION_SUFFIX, detectFormat, parseStringMap, parseV2, serializeV2 } from '../envelope/s3ec-v2.ts';
import type { ReadResult, WriteFence, WriteResult } from './envelope-store.ts';
import type { Envelope } from '../core/envelope.ts';
import { fencedWrite, normalizeEtag } from './s3-client.ts';
import { etagAs, type EtagCheck } from './s3-capabilities.ts';
import { isNotFound, isPreconditionFailed, toItemFailure } from './s3-errors.ts';
import type { InstructionFileState } from './s3-object-token.ts';
import { s3Url } from '../core/store-id.ts';

/** Instruction files are a few hundred bytes; anything far larger is not one. */
const MAX_INSTRUCTION_BYTES = 64 * 1024;

export function instructionKey(key: string): string {
  return `${key}${INSTRUCTION_SUFFIX}`;
}

type Invalid = Extract<ReadResult, { kind: 'invalid' }>;
export type InstructionRead =
  | { kind: 'envelope'; envelope: Envelope; state: InstructionFileState }
  | { kind: 'missing' }
  | Invalid;

export async function readInstructionFile(client: S3Client, bucket: string, key: string, signal?: AbortSignal): Promise<InstructionRead> {
  const ikey = instructionKey(key);
  const where = s3Url(bucket, ikey);
  let text: string;
  let out;
  try {
    out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: ikey }), { abortSignal: signal });
    if ((out.ContentLength ?? 0) > MAX_INSTRUCTION_BYTES) {
      out.Body?.transformToWebStream().cancel().catch(() => undefined);
      return { kind: 'invalid', reason: 'instruction-file-malformed', detail: `${where}: ${out.ContentLength} bytes; an instruction file is a small JSON object (at most ${MAX_INSTRUCTION_BYTES} bytes)` };
    }
    text = (await out.Body?.transformToString('utf8')) ?? '';
  } catch (err) {
    if (isNotFound(err)) return { kind: 'missing' };
    throw toItemFailure(err, `GetObject ${where}`);
  }
  const json = parseStringMap(text);
  if (!json) return { kind: 'invalid', reason: 'instruction-file-malformed', detail: `${where}: expected a JSON object whose values are all strings` };
  if (detectFormat(json) === 'none') {
    return { kind: 'invalid', reason: 'instruction-file-malformed', detail: `${where}: the JSON has no envelope (no x-amz-key-v2, x-amz-key or x-amz-3)` };
  }
  const parsed = parseV2(json, where);
  if (parsed.kind === 'invalid') return parsed;
  return {
    kind: 'envelope',
    envelope: parsed.envelope,
    state: { etag: normalizeEtag(out.ETag), ...(out.VersionId !== undefined ? { versionId: out.VersionId } : {}), metadata: { ...(out.Metadata ?? {}) }, contentType: out.ContentType, json },
  };
}

/** The new instruction file: the JSON as read, envelope keys replaced, other keys kept. */
export function nextInstructionJson(state: InstructionFileState, next: Envelope): string {
  const kept = Object.fromEntries(Object.entries(state.json).filter(([k]) => !ENVELOPE_KEYS.includes(k)));
  return JSON.stringify({ ...kept, ...serializeV2(next) });
}

/**
 * Replaces the instruction file if its ETag is still the one read. `ifMatch` is the form of
 * If-Match the endpoint honours, or null for an unconditional write (the user allowed it).
 */
export async function writeInstructionFile(
  client: S3Client,
  bucket: string,
  key: string,
  state: InstructionFileState,
  next: Envelope,
  ifMatch: Exclude<EtagCheck, false> | null,
  signal?: AbortSignal,
  fence?: WriteFence,
): Promise<WriteResult> {
  const ikey = instructionKey(key);
  try {
    const out = await client.send(
      fencedWrite(new PutObjectCommand({
        Bucket: bucket,
        Key: ikey,
        Body: nextInstructionJson(state, next),
        Metadata: state.metadata,
        ContentType: state.contentType,
        ...(ifMatch ? { IfMatch: etagAs(ifMatch, state.etag) } : {}),
      }), fence),
      { abortSignal: signal },
    );
    /* Our write copies the metadata read, marker included: a marked file stays marked. */
    return INSTRUCTION_FILE_MARKER in state.metadata && out.ETag ? { written: { etag: normalizeEtag(out.ETag) } } : 'written';
  } catch (err) {
    // RGW answers 412 for If-Match on a missing key, AWS 404: both mean "changed, re-read".
    if (isPreconditionFailed(err) || isNotFound(err)) return 'conflict';
    throw toItemFailure(err, `PutObject ${s3Url(bucket, ikey)}`);
  }
}
