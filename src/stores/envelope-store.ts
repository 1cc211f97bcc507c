/** The store port: where envelopes live. The pipeline knows stores only through this interface. */
import type { Envelope, InvalidEnvelope } from '../core/envelope.ts';
import type { StoreId } from '../core/store-id.ts';

/** One item of a store: an S3 object key, or a row id rendered as text. */
export interface ItemRef {
  key: string;
}

export type ReadResult =
  | {
      kind: 'envelope';
      envelope: Envelope;
      /** opaque to the pipeline */
      token: unknown;
      /** See EnvelopeFileSeen: the file as this read found it. */
      envelopeFile?: EnvelopeFileSeen;
    }
  | InvalidEnvelope;

/**
 * S3 instruction placement: `<key>.instruction`, holding the item's envelope and carrying the
 * instruction-file marker, as a read found it or a write left it. The ledger keeps its ETag with
 * the item, so a delta pass that lists the same ETag knows the name is no item without a
 * HeadObject (S3ListSource). Only for a marked file: an unmarked one is left to that check.
 */
export interface EnvelopeFileSeen {
  etag: string;
}

/** `{ written }`: written, and the write left the envelope file as EnvelopeFileSeen says. */
export type WriteResult = 'written' | 'conflict' | { written: EnvelopeFileSeen };

export const isWritten = (r: unknown): r is Exclude<WriteResult, 'conflict'> => r === 'written' || (typeof r === 'object' && r !== null && 'written' in r);

/**
 * Invariant 8: a worker writes only while it holds its batch lease. The store calls the fence
 * as each write request leaves the process (every attempt, after signing, and before
 * CompleteMultipartUpload or an UPDATE), never earlier; it throws a WriteFencedError to stop
 * the request, and the store lets that error through unchanged.
 */
export type WriteFence = () => void;

/* Thrown by a WriteFence (core/errors.ts: the KEK providers' dedupe tells it apart too). */
export { WriteFencedError } from '../core/errors.ts';

/**
 * The envelope write landed, then a follow-up step of the same write failed (S3: putting back
 * tags the self-copy dropped). The item IS under the new key: its outcome is the write's, and
 * `problem` goes with its audit event; it is not a batch error.
 */
export class LandedWriteError extends Error {
  constructor(
    readonly problem: string,
    options?: { cause?: unknown },
  ) {
    super(problem, options);
    this.name = 'LandedWriteError';
  }
}

/** How strongly a store can refuse a write when the item changed after we read it. */
export type CasLevel =
  /** the envelope itself is compared (a row's wrapped DEK, the instruction file's ETag) */
  | 'envelope'
  /** the object's content ETag is compared: catches content writes, not metadata-only ones */
  | 'content'
  /** nothing is compared: only with explicit user consent */
  | 'none';

export interface EnvelopeStore {
  /** Stable id used in the ledger, e.g. `s3://bucket` or `pg:public.secrets`. */
  readonly id: StoreId;
  read(item: ItemRef, signal?: AbortSignal): Promise<ReadResult>;
  /**
   * Writes `next` only if the item still is as it was when `token` was read.
   * 'conflict' means it changed (or vanished): the caller re-reads, never overwrites.
   * Throws ItemError for transient store failures (retry) or `unconditional-write-refused`,
   * what `fence` threw (nothing more was sent), or LandedWriteError (written, then a follow-up
   * failed). Write requests are sent once: no SDK retry (the caller re-reads instead).
   */
  writeIfUnchanged(item: ItemRef, token: unknown, next: Envelope, signal?: AbortSignal, fence?: WriteFence): Promise<WriteResult>;
  /** The compare-and-swap this store gives for `item`, after probing the endpoint if needed. */
  casLevel(item: ItemRef, signal?: AbortSignal): Promise<CasLevel>;
  /**
   * Where the store holds the payload too (S3): whether it decrypts with `dek` end to end.
   * Used by the canary stage; stores that hold only envelopes (rows) leave it out.
   */
  contentDecrypts?(item: ItemRef, env: Envelope, dek: Buffer, signal?: AbortSignal): Promise<boolean>;
}

/** A store that can read and write many items in one round trip (Postgres). */
export interface BatchEnvelopeStore extends EnvelopeStore {
  readMany(items: ItemRef[], signal?: AbortSignal): Promise<Map<string, ReadResult>>;
  /** One set-based conditional write; returns the keys that were written. */
  writeManyIfUnchanged(
    writes: { item: ItemRef; token: unknown; next: Envelope }[],
    signal?: AbortSignal,
    fence?: WriteFence,
  ): Promise<Map<string, WriteResult>>;
  /**
   * Optional: the items a source's statement selects, read with their envelopes in that same
   * statement (`query` gets the store's select list). The batch ledger form's range pages use it.
   */
  readSelected?(query: (columns: string) => Promise<{ text: string; values: unknown[] }>, signal?: AbortSignal): Promise<{ keys: string[]; reads: Map<string, ReadResult> }>;
}

export function isBatchStore(store: EnvelopeStore): store is BatchEnvelopeStore {
  return typeof (store as Partial<BatchEnvelopeStore>).writeManyIfUnchanged === 'function';
}
