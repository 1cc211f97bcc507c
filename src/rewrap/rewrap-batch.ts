/**
 * Many items at once. Stores that write set-based (Postgres) get one read and one conditional
 * write per round; others go item by item under a concurrency limit.
 */
import pLimit from 'p-limit';
import { ItemError } from '../core/errors.ts';
import { isBatchStore, type BatchEnvelopeStore, type ItemRef, type ReadResult } from '../stores/envelope-store.ts';
import { fromError, rewrapItem, rewrapUntilWritten, type RewrapTarget } from './rewrap-item.ts';
import type { ItemOutcome } from './outcome.ts';

export interface BatchOptions {
  /** Provider calls (and store calls for per-item stores) in flight at once. */
  concurrency: number;
  /**
   * The items' reads, already done (a set-based store's readSelected): the first round uses them
   * instead of reading again. A conflict's re-read still goes to the store.
   */
  reads?: Map<string, ReadResult>;
}

export async function rewrapBatch(t: RewrapTarget, items: readonly ItemRef[], opts: BatchOptions): Promise<ItemOutcome[]> {
  const limit = pLimit(Math.max(1, opts.concurrency));
  if (!isBatchStore(t.store)) {
    const settled = await Promise.allSettled(items.map((item) => limit(() => rewrapItem(t, item))));
    const done = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw new BatchInterruptedError(done, failed.reason);
    return done;
  }
  return rewrapSetBased(t, t.store, items, limit, opts.reads);
}

/**
 * The batch stopped early (fence, abort, unexpected error). `completed` holds the outcomes of
 * the items that finished before: their writes happened and they can still be committed.
 */
export class BatchInterruptedError extends Error {
  constructor(
    readonly completed: ItemOutcome[],
    cause: unknown,
  ) {
    super(`batch interrupted after ${completed.length} items: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'BatchInterruptedError';
  }
}

function rewrapSetBased(t: RewrapTarget, store: BatchEnvelopeStore, items: readonly ItemRef[], limit: ReturnType<typeof pLimit>, first?: Map<string, ReadResult>): Promise<ItemOutcome[]> {
  let given = first;
  return rewrapUntilWritten(
    t,
    items,
    {
      /* One failure of a set-based call is every item's (an ItemError), or the batch's (anything else). */
      async read(pending) {
        if (given) {
          const reads = given;
          given = undefined;
          if (pending.every((item) => reads.has(item.key))) return reads;
        }
        try {
          return await store.readMany([...pending], t.signal);
        } catch (err) {
          return new Map(pending.map((item) => [item.key, fromError(item.key, err)]));
        }
      },
      async write(writes) {
        try {
          t.fence?.();
          return await store.writeManyIfUnchanged([...writes], t.signal, t.fence);
        } catch (err) {
          if (!(err instanceof ItemError)) throw err;
          return new Map(writes.map((w) => [w.item.key, fromError(w.item.key, err)]));
        }
      },
    },
    limit,
  );
}
