/**
 * The core operation: read -> classify -> rewrap via the provider -> conditional write.
 * Invariant 1: an item is reported `rewrapped` only after the store write succeeded.
 * Invariant 2: every step is safe to repeat.
 * Invariant 3: no write without compare-and-swap (the store refuses, unless allowed).
 */
import { ConfigError, ItemError } from '../core/errors.ts';
import { NotUnderSourceError, type KekProvider } from '../kek/kek-provider.ts';
import type { KekSelector, KekVersionRef } from '../core/kek-ref.ts';
import { withNewKey } from '../envelope/s3ec-v2.ts';
import { LandedWriteError, WriteFencedError, type EnvelopeStore, type ItemRef, type ReadResult, type WriteFence } from '../stores/envelope-store.ts';
import type { Envelope } from '../core/envelope.ts';
import { classify } from './classify.ts';
import { kekOfUnreadable } from './unreadable-kek.ts';
import type { ItemOutcome } from './outcome.ts';

export interface RewrapTarget {
  store: EnvelopeStore;
  provider: KekProvider;
  from: KekSelector;
  to: KekSelector;
  /** How often an item that changed under us is re-read before it is left for a later retry. */
  maxConflictRetries?: number;
  signal?: AbortSignal;
  /**
   * Invariant 8: passed to the store, which calls it as each write request leaves the process;
   * throws (a WriteFencedError) to stop the write (the batch's lease was lost or may have run
   * out). The error propagates to the caller.
   */
  fence?: WriteFence;
}

export const DEFAULT_CONFLICT_RETRIES = 3;

export async function rewrapItem(t: RewrapTarget, item: ItemRef): Promise<ItemOutcome> {
  const maxConflicts = t.maxConflictRetries ?? DEFAULT_CONFLICT_RETRIES;
  for (let conflicts = 0; ; conflicts++) {
    let read: ReadResult;
    try {
      read = await t.store.read(item, t.signal);
    } catch (err) {
      return itemFailure(t, item.key, err);
    }
    const prepared = await prepare(t, item.key, read);
    if ('status' in prepared) return prepared;
    try {
      t.fence?.(); // early exit only; the check that counts runs as the request leaves (the store)
      const result = await t.store.writeIfUnchanged(item, prepared.token, prepared.next, t.signal, t.fence);
      if (result === 'written') return writtenOutcome(item.key, prepared, conflicts);
    } catch (err) {
      if (err instanceof LandedWriteError) return writtenOutcome(item.key, prepared, conflicts, err.problem);
      return itemFailure(t, item.key, err);
    }
    /* A write landed between our read and our write: re-read and rewrap on top of it. */
    if (conflicts >= maxConflicts) {
      return { status: 'retry', key: item.key, reason: 'conflict-retries-exhausted', detail: `changed under us ${conflicts + 1} times` };
    }
  }
}

export interface Prepared {
  token: unknown;
  next: Envelope;
  from: KekVersionRef;
  to: KekVersionRef;
  requestId?: string;
  /**
   * Set when the item was already under the target key material but nobody had recorded it: the
   * write records the material (so the source stops selecting the item), and the outcome says
   * what happened to the key, which did not move.
   */
  alreadyAtTarget?: boolean;
}

/** The outcome of an item whose write landed. */
export function writtenOutcome(key: string, p: Prepared, conflicts: number, problem?: string): ItemOutcome {
  const also = problem === undefined ? {} : { problem };
  if (p.alreadyAtTarget) return { status: 'skipped', key, reason: 'already-at-target', current: p.to, recorded: { requestId: p.requestId }, ...also };
  return { status: 'rewrapped', key, from: p.from, to: p.to, requestId: p.requestId, conflicts, ...also };
}

/** Classifies a read item and, if it needs it, asks the provider for the new wrapped key. */
export async function prepare(t: RewrapTarget, key: string, read: ReadResult): Promise<Prepared | ItemOutcome> {
  if (read.kind === 'invalid') {
    /* Invariant 7: the KEK an unreadable item still names goes to the inventory, or none if it names none we can decide. */
    const current = kekOfUnreadable(read.kekReference, t.provider, t.from);
    return { status: 'failed', key, reason: read.reason, detail: read.detail, ...(current ? { current } : {}) };
  }
  const env = read.envelope;
  const c = classify(env, t.provider, t.from, t.to);
  if (c.kind === 'skip') return { status: 'skipped', key, reason: c.reason, current: c.current };
  if (c.kind === 'unknown-kek') {
    return { status: 'failed', key, reason: 'unknown-kek', detail: `${key}: no keyring KEK matches matdesc ${JSON.stringify(env.dek.matdesc)}` };
  }
  try {
    const r = await t.provider.rewrap(env.dek, t.from, t.to, t.signal);
    return { token: read.token, next: withNewKey(env, r.wrapped, r.matdesc, r.to), from: r.from, to: r.to, requestId: r.requestId };
  } catch (err) {
    if (err instanceof NotUnderSourceError) {
      /*
       * Precondition: an item of unknown material is written whatever material KMS found it
       * under when the campaign moves it to the current material of the same key (rotate on
       * demand), so a source that selects unknown materials does not select it again, run after
       * run. Moving it to another key would move data the campaign was not asked to move (an
       * incident on one material would take the key's other materials along): skipped.
       */
      const r = c.materialUnknown && t.from.id === t.to.id ? err.rewrapped : undefined;
      if (!r) return { status: 'skipped', key, reason: 'not-under-source', current: err.actual };
      const alreadyAtTarget = r.from.materialId !== undefined && r.from.materialId === r.to.materialId;
      return { token: read.token, next: withNewKey(env, r.wrapped, r.matdesc, r.to), from: r.from, to: r.to, requestId: r.requestId, alreadyAtTarget };
    }
    const o = itemFailure(t, key, err);
    // A failed item still counts under the KEK that wraps it (the inventory, the retirement gate).
    return o.status === 'failed' ? { ...o, current: c.current ?? env.dek.kek } : o;
  }
}

/**
 * Issue 13, point 6: an error on ONE item's own request (its read, its provider call, its write)
 * is that item's outcome, even one rewrap does not know: a thrown error fails the whole batch,
 * which is retried and fails again, so one odd item would hold every other item of its batch.
 * The item stays untouched and, failed, keeps its KEK from retirement. What is not about the item
 * still ends the batch: the fence and aborts (stop writing now), configuration errors (every item
 * would fail alike; the campaign pauses on them).
 */
function itemFailure(t: RewrapTarget, key: string, err: unknown): ItemOutcome {
  if (err instanceof ItemError) return fromError(key, err);
  if (err instanceof WriteFencedError || err instanceof ConfigError || t.signal?.aborted || (err as { name?: unknown } | null)?.name === 'AbortError') throw err;
  return { status: 'failed', key, reason: 'unexpected-error', detail: `${key}: ${describeUnexpected(err)}` };
}

/** "TypeError: ...", one line, bounded: names the error without quoting more than its message. */
function describeUnexpected(err: unknown): string {
  const e = err instanceof Error ? err : new Error(String(err));
  const text = `${e.name}: ${e.message}`.split('\n')[0]!;
  return text.length > 300 ? `${text.slice(0, 300)}...` : text;
}

export function fromError(key: string, err: unknown): ItemOutcome {
  if (err instanceof ItemError) {
    const detail = `${key}: ${err.message}`;
    return err.transient
      ? { status: 'retry', key, reason: err.reason as Extract<ItemOutcome, { status: 'retry' }>['reason'], detail }
      : { status: 'failed', key, reason: err.reason as Extract<ItemOutcome, { status: 'failed' }>['reason'], detail };
  }
  throw err;
}
