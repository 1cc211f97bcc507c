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
import {
  LandedWriteError,
  WriteFencedError,
  isWritten,
  type EnvelopeFileSeen,
  type EnvelopeStore,
  type ItemRef,
  type ReadResult,
  type WriteFence,
  type WriteResult,
} from '../stores/envelope-store.ts';
import type { Envelope } from '../core/envelope.ts';
import { classifyInMap } from './classify.ts';
import { kekOfUnreadableInMap } from './unreadable-kek.ts';
import { KekMap } from '../kek/kek-map.ts';
import { isTransient } from '../core/reasons.ts';
import type { ItemOutcome } from './outcome.ts';

export interface RewrapTarget {
  store: EnvelopeStore;
  provider: KekProvider;
  /** One source KEK and its destination (a one-entry map); or `keyMap`. */
  from?: KekSelector;
  to?: KekSelector;
  /** Many source KEKs, each with its destination (key maps): each item moves by the entry of the KEK that wraps it. */
  keyMap?: KekMap;
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

const maps = new WeakMap<RewrapTarget, KekMap>();
/** The target's key map: `keyMap`, or from/to as a one-entry map (built once per target). */
export function mapOf(t: RewrapTarget): KekMap {
  if (t.keyMap) return t.keyMap;
  let m = maps.get(t);
  if (!m) {
    if (!t.from || !t.to) throw new ConfigError('rewrap target: expected from and to, or keyMap');
    m = KekMap.of(t.from, t.to);
    maps.set(t, m);
  }
  return m;
}

export async function rewrapItem(t: RewrapTarget, item: ItemRef): Promise<ItemOutcome> {
  const [outcome] = await rewrapUntilWritten(t, [item], {
    async read([it]) {
      try {
        return new Map([[it!.key, await t.store.read(it!, t.signal)]]);
      } catch (err) {
        return new Map([[it!.key, itemFailure(t, it!.key, err)]]);
      }
    },
    async write([w]) {
      const key = w!.item.key;
      try {
        t.fence?.(); // early exit only; the check that counts runs as the request leaves (the store)
        return new Map([[key, await t.store.writeIfUnchanged(w!.item, w!.token, w!.next, t.signal, t.fence)]]);
      } catch (err) {
        if (err instanceof LandedWriteError) return new Map([[key, { landed: err.problem }]]);
        return new Map([[key, itemFailure(t, key, err)]]);
      }
    },
  });
  return outcome!;
}

export interface PendingWrite {
  item: ItemRef;
  token: unknown;
  next: Envelope;
}

/**
 * One round's store calls: item by item, or set-based (rewrap-batch.ts). Each maps every item to
 * what happened to it; an item's own failure is its outcome, anything else throws.
 */
export interface RoundIo {
  read(items: readonly ItemRef[]): Promise<Map<string, ReadResult | ItemOutcome>>;
  /** `landed`: written, but a follow-up of the write failed (LandedWriteError's problem). */
  write(writes: readonly PendingWrite[]): Promise<Map<string, WriteResult | { landed: string } | ItemOutcome>>;
}

/**
 * The one conflict-retry loop: read, prepare (classify and rewrap), write if unchanged. An item
 * that changed between our read and our write is read again and rewrapped on top of the change,
 * never overwritten; after maxConflictRetries it is left for a later retry (a transient outcome).
 * `limit` bounds the provider calls in flight (p-limit); outcomes come in the order of `items`.
 */
export async function rewrapUntilWritten(
  t: RewrapTarget,
  items: readonly ItemRef[],
  io: RoundIo,
  limit: <T>(fn: () => Promise<T>) => Promise<T> = (fn) => fn(),
): Promise<ItemOutcome[]> {
  const done = new Map<string, ItemOutcome>();
  const maxConflicts = t.maxConflictRetries ?? DEFAULT_CONFLICT_RETRIES;
  let pending = [...items];
  for (let round = 0; pending.length > 0; round++) {
    const reads = await io.read(pending);
    const prepared = await Promise.all(
      pending.map((item) =>
        limit(async () => {
          const read = reads.get(item.key) ?? { kind: 'invalid', reason: 'item-missing', detail: `${item.key}: not found` };
          return { item, p: 'status' in read ? read : await prepare(t, item.key, read) };
        }),
      ),
    );
    const writes: PendingWrite[] = [];
    const byKey = new Map<string, Prepared>();
    for (const { item, p } of prepared) {
      if ('status' in p) done.set(item.key, p);
      else {
        writes.push({ item, token: p.token, next: p.next });
        byKey.set(item.key, p);
      }
    }
    if (writes.length === 0) break;
    const results = await io.write(writes);
    pending = [];
    for (const w of writes) {
      const key = w.item.key;
      const p = byKey.get(key)!;
      const r = results.get(key);
      if (isWritten(r)) done.set(key, writtenOutcome(key, p, round, undefined, typeof r === 'object' ? r.written : undefined));
      else if (typeof r === 'object' && 'landed' in r) done.set(key, writtenOutcome(key, p, round, r.landed));
      else if (typeof r === 'object') done.set(key, r);
      else if (round >= maxConflicts) {
        done.set(key, { status: 'retry', key, reason: 'conflict-retries-exhausted', detail: `changed under us ${round + 1} times` });
      } else {
        /* A write landed between our read and our write: re-read and rewrap on top of it. */
        pending.push(w.item);
      }
    }
  }
  return items.map((item) => done.get(item.key)!);
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

/** The outcome of an item whose write landed; `file`: its instruction file as the write left it. */
export function writtenOutcome(key: string, p: Prepared, conflicts: number, problem?: string, file?: EnvelopeFileSeen): ItemOutcome {
  const also = { ...(problem === undefined ? {} : { problem }), ...(file ? { envelopeFile: file } : {}) };
  if (p.alreadyAtTarget) return { status: 'skipped', key, reason: 'already-at-target', current: p.to, recorded: { requestId: p.requestId }, ...also };
  return { status: 'rewrapped', key, from: p.from, to: p.to, requestId: p.requestId, conflicts, ...also };
}

/** Classifies a read item and, if it needs it, asks the provider for the new wrapped key. */
export async function prepare(t: RewrapTarget, key: string, read: ReadResult): Promise<Prepared | ItemOutcome> {
  if (read.kind === 'invalid') {
    /* Invariant 7: the KEK an unreadable item still names goes to the inventory, or none if it names none we can decide. */
    const current = kekOfUnreadableInMap(read.kekReference, t.provider, mapOf(t));
    return { status: 'failed', key, reason: read.reason, detail: read.detail, ...(current ? { current } : {}) };
  }
  const env = read.envelope;
  const c = classifyInMap(env, t.provider, mapOf(t));
  const file = read.envelopeFile ? { envelopeFile: read.envelopeFile } : {};
  if (c.kind === 'skip') return { status: 'skipped', key, reason: c.reason, current: c.current, ...file };
  if (c.kind === 'unknown-kek') {
    const detail =
      t.provider.kind === 'kms'
        ? `${key}: names no KMS key (no rewrap stamp, no KEK columns), so no entry of the key map can be chosen`
        : `${key}: no keyring KEK matches matdesc ${JSON.stringify(env.dek.matdesc)}`;
    return { status: 'failed', key, reason: 'unknown-kek', detail };
  }
  const { from, to } = c.entry!;
  try {
    const r = await t.provider.rewrap(env.dek, from, to, t.signal);
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
      const r = c.materialUnknown && from.id === to.id ? err.rewrapped : undefined;
      if (!r) return { status: 'skipped', key, reason: 'not-under-source', current: err.actual, ...file };
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
    return isTransient(err.reason) ? { status: 'retry', key, reason: err.reason, detail } : { status: 'failed', key, reason: err.reason, detail };
  }
  throw err;
}
