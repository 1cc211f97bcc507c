/**
 * The S3 envelope store: S3 Encryption Client V2 envelopes of the objects in one bucket, in the
 * object's user metadata or in `<key>.instruction` files.
 *
 * Compare-and-swap, honestly: the store probes once what the endpoint honours
 * (s3-capabilities.ts) and uses the strongest check per kind of write:
 * - instruction files: PutObject If-Match on the instruction file's ETag -> 'envelope';
 * - metadata, one CopyObject: an ETag precondition on the object -> 'content' (a metadata-only
 *   copy keeps the ETag, so two concurrent rewraps are not told apart, content writes are);
 * - metadata, multipart copy (objects over `multipartThresholdBytes`): Complete If-Match or
 *   part-copy source checks -> 'content'; Ceph RGW honours neither -> 'none'.
 * Invariant 3: at level 'none' nothing is written unless `allowUnconditionalWrites` is set.
 *
 * Not kept by a rewrite: object ACLs (no copy keeps them; buckets with ACLs disabled, the AWS
 * default since 2023, are unaffected) and, in versioned buckets, the old envelope stays in the
 * previous version (in a versioning-suspended bucket a write would replace the key's null
 * version instead: refused when that is an older copy, s3-null-version.ts). Keys ending in `.instruction` that carry `x-amz-crypto-instr-file` are
 * instruction files, never items: read answers 'not-encrypted' saying so. Objects a self-copy
 * cannot rewrite (archived, SSE-C, a requester-pays bucket without `requesterPays`) are answered
 * 'invalid' with their own reason from the HEAD, before any write (s3-uncopyable.ts).
 */
import { HeadObjectCommand, type HeadObjectCommandOutput, type S3Client } from '@aws-sdk/client-s3';
import { INSTRUCTION_FILE_MARKER, INSTRUCTION_SUFFIX, detectFormat, hasEncryptionHints, parseV2 } from '../envelope/s3ec-v2.ts';
import { ConfigError, permanent } from '../core/errors.ts';
import type { CasLevel, EnvelopeStore, ItemRef, ReadResult, WriteFence, WriteResult } from './envelope-store.ts';
import type { Envelope } from '../core/envelope.ts';
import { payingClient } from './s3-client.ts';
import { copyLevel, instructionLevel, multipartLevel, probeS3Capabilities, type S3Capabilities } from './s3-capabilities.ts';
import { isNotFound, toItemFailure } from './s3-errors.ts';
import { uncopyableFromHead, uncopyableFromHeadError } from './s3-uncopyable.ts';
import { contentDecrypts } from './s3-content-check.ts';
import { instructionKey, readInstructionFile, writeInstructionFile } from './s3-instruction-placement.ts';
import { writeMetadataEnvelope } from './s3-metadata-placement.ts';
import { NullVersionGuard } from './s3-null-version.ts';
import { isS3ItemToken, makeToken, objectState, type S3ItemToken } from './s3-object-token.ts';
import { s3StoreId, s3Url, type StoreId } from '../core/store-id.ts';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
/** AWS refuses CopyObject above 5 GiB. */
const MAX_SINGLE_COPY_BYTES = 5 * GiB;
/** A shared probe must not hang forever; it is not under any one caller's signal. */
const PROBE_TIMEOUT_MS = 60_000;

export type S3Placement = 'auto' | 'metadata' | 'instruction';

export interface S3EnvelopeStoreOptions {
  /** One client per process (createS3Client). */
  client: S3Client;
  bucket: string;
  /**
   * Where envelopes are looked for. 'auto' (default): the object's metadata, else its instruction
   * file. 'metadata': never look for instruction files. 'instruction': the envelope is expected in
   * the instruction file (a missing one is 'instruction-file-missing'); an envelope in the
   * metadata still wins, as it does for every S3EC reader.
   */
  placement?: S3Placement;
  /** Objects larger than this are rewritten by multipart copy. Default 5 GiB (the AWS maximum). */
  multipartThresholdBytes?: number;
  /** Part size of the multipart copy. Default 256 MiB; raised as needed to stay within 10,000 parts. */
  partSizeBytes?: number;
  /** Parallel UploadPartCopy requests per object. Default 4. */
  partCopyConcurrency?: number;
  /** Write even where the endpoint honours no precondition (level 'none'). Default false. */
  allowUnconditionalWrites?: boolean;
  /**
   * The bucket charges the requester and the user accepts: every request carries
   * `x-amz-request-payer: requester`. Default false: such a bucket's objects fail as 'requester-pays'.
   */
  requesterPays?: boolean;
}

export class S3EnvelopeStore implements EnvelopeStore {
  readonly id: StoreId;
  readonly bucket: string;
  private readonly client: S3Client;
  private readonly placement: S3Placement;
  private readonly multipartThresholdBytes: number;
  private readonly partSizeBytes: number;
  private readonly partCopyConcurrency: number;
  private readonly allowUnconditionalWrites: boolean;
  private readonly requesterPays: boolean;
  private probe?: Promise<S3Capabilities>;
  private readonly nullVersions: NullVersionGuard;

  constructor(options: S3EnvelopeStoreOptions) {
    if (!options.bucket) throw new ConfigError('S3EnvelopeStore: bucket is required');
    const placement = options.placement ?? 'auto';
    if (!['auto', 'metadata', 'instruction'].includes(placement)) {
      throw new ConfigError(`S3EnvelopeStore: placement is ${JSON.stringify(placement)}; expected auto, metadata or instruction`);
    }
    this.requesterPays = options.requesterPays ?? false;
    this.client = this.requesterPays ? payingClient(options.client) : options.client;
    this.bucket = options.bucket;
    this.id = s3StoreId(options.bucket);
    this.placement = placement;
    this.multipartThresholdBytes = positiveInt('multipartThresholdBytes', options.multipartThresholdBytes ?? MAX_SINGLE_COPY_BYTES);
    if (this.multipartThresholdBytes > MAX_SINGLE_COPY_BYTES) {
      throw new ConfigError(`S3EnvelopeStore: multipartThresholdBytes is ${this.multipartThresholdBytes}; at most ${MAX_SINGLE_COPY_BYTES} (5 GiB, the CopyObject limit)`);
    }
    this.partSizeBytes = positiveInt('partSizeBytes', options.partSizeBytes ?? 256 * MiB);
    if (this.partSizeBytes < 5 * MiB) throw new ConfigError(`S3EnvelopeStore: partSizeBytes is ${this.partSizeBytes}; S3 parts are at least 5 MiB (5242880)`);
    this.partCopyConcurrency = positiveInt('partCopyConcurrency', options.partCopyConcurrency ?? 4);
    this.allowUnconditionalWrites = options.allowUnconditionalWrites ?? false;
    this.nullVersions = new NullVersionGuard(this.client, this.bucket);
  }

  /** What the endpoint honours for this bucket: probed on first use, then cached. */
  capabilities(): Promise<S3Capabilities> {
    this.probe ??= probeS3Capabilities(this.client, this.bucket, AbortSignal.timeout(PROBE_TIMEOUT_MS)).catch((err: unknown) => {
      this.probe = undefined; // a failed probe is retried by the next caller
      throw err;
    });
    return this.probe;
  }

  contentDecrypts(item: ItemRef, env: Envelope, dek: Buffer, signal?: AbortSignal): Promise<boolean> {
    return contentDecrypts(this.client, this.bucket, item.key, env, dek, signal);
  }

  async read(item: ItemRef, signal?: AbortSignal): Promise<ReadResult> {
    const where = this.where(item);
    const head = await this.head(item, signal);
    if (!head) return { kind: 'invalid', reason: 'item-missing', detail: `${where}: no such object` };
    if ('kind' in head) return head;
    const uncopyable = uncopyableFromHead(head, where);
    if (uncopyable) return uncopyable;
    const meta = head.Metadata ?? {};
    if (item.key.endsWith(INSTRUCTION_SUFFIX) && INSTRUCTION_FILE_MARKER in meta) {
      const owner = item.key.slice(0, -INSTRUCTION_SUFFIX.length);
      return { kind: 'invalid', reason: 'not-encrypted', detail: `${where}: is an instruction file (the envelope of ${owner}), not an item; it is rewrapped with its object` };
    }
    if (detectFormat(meta) !== 'none') {
      const parsed = parseV2(meta, where);
      if (parsed.kind === 'invalid') return parsed;
      return { kind: 'envelope', envelope: parsed.envelope, token: makeToken({ placement: 'metadata', ...objectState(head) }) };
    }
    if (this.placement === 'metadata') {
      const hint = hasEncryptionHints(meta) ? ' (it has x-amz-cek-alg/x-amz-iv metadata: its envelope may be in an instruction file, which placement "metadata" does not read)' : '';
      return { kind: 'invalid', reason: 'not-encrypted', detail: `${where}: no x-amz-key-v2 envelope in its metadata${hint}` };
    }
    const instruction = await readInstructionFile(this.client, this.bucket, item.key, signal);
    if (instruction.kind === 'invalid') return instruction;
    if (instruction.kind === 'missing') {
      if (hasEncryptionHints(meta) || this.placement === 'instruction') {
        return { kind: 'invalid', reason: 'instruction-file-missing', detail: `${where}: no envelope in its metadata and no ${item.key}${INSTRUCTION_SUFFIX}` };
      }
      return { kind: 'invalid', reason: 'not-encrypted', detail: `${where}: no envelope in its metadata and no instruction file` };
    }
    return {
      kind: 'envelope',
      envelope: instruction.envelope,
      token: makeToken({ placement: 'instruction', ...objectState(head), instruction: instruction.state }),
      ...(INSTRUCTION_FILE_MARKER in instruction.state.metadata && instruction.state.etag ? { envelopeFile: { etag: instruction.state.etag } } : {}),
    };
  }

  /** Invariant 8: `fence` runs as each write request leaves (s3-client.ts fencedWrite), not here. */
  async writeIfUnchanged(item: ItemRef, token: unknown, next: Envelope, signal?: AbortSignal, fence?: WriteFence): Promise<WriteResult> {
    const where = this.where(item);
    if (!isS3ItemToken(token)) throw new Error(`${where}: the token passed to writeIfUnchanged was not returned by S3EnvelopeStore.read`);
    const caps = await this.capabilities();
    const level = this.levelFor(token, caps);
    if (level === 'none' && !this.allowUnconditionalWrites) {
      /* Invariant 3: no write without compare-and-swap unless the user allowed it. */
      throw permanent(
        'unconditional-write-refused',
        `${where}: ${caps.endpoint} honours no precondition for ${this.writeKind(token)}; nothing was written. ` +
          'Set allowUnconditionalWrites to rewrite without compare-and-swap' +
          (token.placement === 'metadata' && token.size > this.multipartThresholdBytes ? ', or raise multipartThresholdBytes if the endpoint copies large objects in one request' : ''),
      );
    }
    /* Nothing lost: in a versioning-suspended bucket the write must not replace an older null version. */
    if (token.placement === 'instruction') await this.nullVersions.check(instructionKey(item.key), token.instruction!.versionId, where, signal);
    else await this.nullVersions.check(item.key, token.versionId, where, signal);
    if (token.placement === 'instruction') {
      return writeInstructionFile(this.client, this.bucket, item.key, token.instruction!, next, caps.putIfMatch || null, signal, fence);
    }
    return writeMetadataEnvelope(this.client, this.bucket, item.key, token, next, caps, {
      multipartThresholdBytes: this.multipartThresholdBytes,
      partSizeBytes: this.partSizeBytes,
      partCopyConcurrency: this.partCopyConcurrency,
    }, signal, fence);
  }

  async casLevel(item: ItemRef, signal?: AbortSignal): Promise<CasLevel> {
    const caps = await this.capabilities();
    const head = await this.head(item, signal);
    if (!head || 'kind' in head) return copyLevel(caps);
    if (detectFormat(head.Metadata ?? {}) === 'none' && this.placement !== 'metadata') return instructionLevel(caps);
    return (head.ContentLength ?? 0) > this.multipartThresholdBytes ? multipartLevel(caps) : copyLevel(caps);
  }

  private levelFor(token: S3ItemToken, caps: S3Capabilities): CasLevel {
    if (token.placement === 'instruction') return instructionLevel(caps);
    return token.size > this.multipartThresholdBytes ? multipartLevel(caps) : copyLevel(caps);
  }

  private writeKind(token: S3ItemToken): string {
    if (token.placement === 'instruction') return 'instruction-file writes (PutObject If-Match)';
    return token.size > this.multipartThresholdBytes ? 'multipart copies (UploadPartCopy / CompleteMultipartUpload)' : 'CopyObject';
  }

  /** The HEAD answer, undefined for a missing object, or why an object HEAD refused is not copyable. */
  private async head(item: ItemRef, signal?: AbortSignal): Promise<HeadObjectCommandOutput | Extract<ReadResult, { kind: 'invalid' }> | undefined> {
    try {
      return await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: item.key }), { abortSignal: signal });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      const why = await uncopyableFromHeadError(this.client, this.bucket, item.key, err, this.requesterPays, signal).catch(() => undefined);
      if (why) return why;
      throw toItemFailure(err, `HeadObject ${this.where(item)}`);
    }
  }

  private where(item: ItemRef): string {
    return s3Url(this.bucket, item.key);
  }
}

function positiveInt(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new ConfigError(`S3EnvelopeStore: ${name} is ${value}; expected a positive integer`);
  return value;
}
