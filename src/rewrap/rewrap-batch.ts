/**
 * Many items at once. Stores that write set-based (Postgres) get one read and one conditional
 * write per round; others go item by item under a concurrency limit.
 */
import pLimit from 'p-limit';
import { ItemError } from '../core/errors.ts';
import { isBatchStore, type BatchEnvelopeStore, type ItemRef, type ReadResult } from '../stores/envelope-store.ts';
import { DEFAULT_CONFLICT_RETRIES, fromError, prepare, rewrapItem, writtenOutcome, type Prepared, type RewrapTarget } from './rewrap-item.ts';
import type { ItemOutcome } from './outcome.ts';

export interface BatchOptions {
  /** Provider calls (and store calls for per-item stores) in flight at once. */
  concurrency: number;
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
  return rewrapSetBased(t, t.store, items, limit);
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

async function rewrapSetBased(
  t: RewrapTarget,
  store: BatchEnvelopeStore,
  items: readonly ItemRef[],
  limit: ReturnType<typeof pLimit>,
): Promise<ItemOutcome[]> {
  const done = new Map<string, ItemOutcome>();
  const maxConflicts = t.maxConflictRetries ?? DEFAULT_CONFLICT_RETRIES;
  let pending = [...items];
  for (let round = 0; pending.length > 0; round++) {
    let reads: Map<string, ReadResult>;
    try {
      reads = await store.readMany(pending, t.signal);
    } catch (err) {
      for (const item of pending) done.set(item.key, fromError(item.key, err));
      break;
    }
    const prepared = await Promise.all(
      pending.map((item) =>
        limit(async () => {
          const read = reads.get(item.key) ?? { kind: 'invalid', reason: 'item-missing', detail: `${item.key}: not found` };
          return { item, p: await prepare(t, item.key, read) };
        }),
      ),
    );
    const writes: { item: ItemRef; token: unknown; next: Prepared['next'] }[] = [];
    const byKey = new Map<string, Prepared>();
    for (const { item, p } of prepared) {
      if ('status' in p) done.set(item.key, p);
      else {
        writes.push({ item, token: p.token, next: p.next });
        byKey.set(item.key, p);
      }
    }
    if (writes.length === 0) break;
    let results: Map<string, 'written' | 'conflict'>;
    try {
      t.fence?.();
      results = await store.writeManyIfUnchanged(writes, t.signal, t.fence);
    } catch (err) {
      if (!(err instanceof ItemError)) throw err;
      for (const w of writes) done.set(w.item.key, fromError(w.item.key, err));
      break;
    }
    pending = [];
    for (const w of writes) {
      const p = byKey.get(w.item.key)!;
      if (results.get(w.item.key) === 'written') {
        done.set(w.item.key, writtenOutcome(w.item.key, p, round));
      } else if (round >= maxConflicts) {
        done.set(w.item.key, { status: 'retry', key: w.item.key, reason: 'conflict-retries-exhausted', detail: `changed under us ${round + 1} times` });
      } else {
        /* Changed between our read and our write: re-read, never overwrite. */
        pending.push(w.item);
      }
    }
  }
  return items.map((item) => done.get(item.key)!);
}
