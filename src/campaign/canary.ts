/**
 * The canary stage: before a campaign fans out, a small fraction of its items is rewrapped, read
 * back and decrypted end to end (the DEK unwraps under the target KEK; where the store holds the
 * payload, the payload decrypts with it). Only if all of them pass does the campaign fan out; a
 * failure stops it with a report. The plaintext DEK lives only inside provider.withUnwrapped.
 */
import { rewrapItem } from '../rewrap/rewrap-item.ts';
import { auditWrite } from '../rewrap/audit.ts';
import type { Logger } from '../log.ts';
import { matchesSelector } from '../kek/kek-selector.ts';
import { KekMap } from '../kek/kek-map.ts';
import { keyMapOf } from '../core/campaign-spec.ts';
import type { Resources } from '../runtime/resources.ts';
import type { Campaign } from '../ledger/types.ts';
import { beginCanaryRange, canaryItems, canaryRanges, recordCanaryMoves, recordCanaryRangeMoves } from '../ledger/index.ts';
import { pgSourceFor } from '../runtime/pg-source-for.ts';
import type { KekVersionRef } from '../core/kek-ref.ts';

export interface CanaryItemResult {
  store: string;
  item: string;
  ok: boolean;
  step: 'rewrap' | 'read-back' | 'unwrap' | 'content' | 'passed';
  reason?: string;
}

export interface CanaryReport {
  items: number;
  passed: number;
  failed: CanaryItemResult[];
}

export type CanaryVerdict = { verdict: 'passed' | 'failed'; report: CanaryReport } | { verdict: 'retry-later'; why: string };

/** Items the canary takes: the fraction of the planned total, at least one. */
export function canarySize(fraction: number, planned: number): number {
  return Math.max(1, Math.ceil(fraction * planned));
}

/**
 * The first `n` items of the plan. Batch ledger form: the rows the source selects now in the
 * plan's first ranges, read from the table (the ledger holds no row per item), with their batch.
 */
async function canarySample(res: Resources, c: Campaign, n: number): Promise<{ storeId: string; itemKey: string; batchNo?: number }[]> {
  if (c.ledgerForm !== 'batches') return canaryItems(res.ledger, c.id, n);
  const sample: { storeId: string; itemKey: string; batchNo: number }[] = [];
  for (const r of await canaryRanges(res.ledger, c.id, n)) {
    const source = pgSourceFor(res, c.spec, r.storeId);
    if (!source) throw new Error(`campaign ${c.id}: no pg source of store ${r.storeId}; the canary cannot read its batches`);
    for (const key of await source.rangePage(r.lo, r.hi, n - sample.length)) sample.push({ storeId: r.storeId, itemKey: key, batchNo: r.batchNo });
    if (sample.length >= n) break;
  }
  return sample;
}

export async function runCanary(res: Resources, c: Campaign, planned: number, log: Logger, signal?: AbortSignal): Promise<CanaryVerdict> {
  const spec = c.spec;
  const sample = await canarySample(res, c, canarySize(spec.options.canaryFraction, planned));
  const provider = res.provider(c.id, spec);
  const keyMap = new KekMap(keyMapOf(spec));
  const results: CanaryItemResult[] = [];
  const begun = new Set<number>();
  for (const { storeId, itemKey, batchNo } of sample) {
    /* Stopped (SIGTERM, or the scheduler lost its lock): no verdict; the canary runs again later. */
    if (signal?.aborted) return { verdict: 'retry-later', why: 'canary stopped before its end' };
    const store = res.store(spec, storeId);
    const base = { store: storeId, item: itemKey };
    /* Batch form: the range counts the canary as a claim before its first write (beginCanaryRange). */
    if (batchNo !== undefined && !begun.has(batchNo)) {
      if (!(await beginCanaryRange(res.ledger, c.id, batchNo))) return { verdict: 'retry-later', why: `batch ${batchNo} is done or leased; the canary runs before any batch` };
      begun.add(batchNo);
    }
    const o = await rewrapItem({ store, provider, keyMap, signal }, { key: itemKey });
    /* The canary writes for real: its writes are audited and recorded here (the batch later finds them at the target). */
    auditWrite(log, storeId, o, { canary: true });
    if (o.status === 'rewrapped') {
      const move = { storeId, itemKey, from: o.from, to: o.to };
      /* Batch form: counted on its batch now; its claim will no longer select the item. */
      if (batchNo !== undefined) await recordCanaryRangeMoves(res.ledger, c.id, batchNo, [move]);
      else await recordCanaryMoves(res.ledger, c.id, [move]);
    }
    if (o.status === 'retry') return { verdict: 'retry-later', why: `${itemKey}: ${o.reason}` };
    if (o.status === 'failed') {
      results.push({ ...base, ok: false, step: 'rewrap', reason: o.reason });
      continue;
    }
    if (o.status === 'skipped' && o.reason === 'not-under-source') {
      results.push({ ...base, ok: true, step: 'passed' });
      continue;
    }
    const read = await store.read({ key: itemKey }, signal);
    if (read.kind !== 'envelope') {
      results.push({ ...base, ok: false, step: 'read-back', reason: read.reason });
      continue;
    }
    const target: KekVersionRef | undefined = o.status === 'rewrapped' ? o.to : o.current;
    /* A moved item must be at the destination of its own source KEK (never another entry's). */
    const entry = o.status === 'rewrapped' ? keyMap.entryFor(o.from, spec.provider.type === 'kms') : undefined;
    const atTarget = target !== undefined && (o.status === 'rewrapped' ? entry !== undefined && matchesSelector(target, entry.to) : keyMap.isDestination(target));
    if (!atTarget) {
      results.push({ ...base, ok: false, step: 'read-back', reason: 'not-at-target' });
      continue;
    }
    try {
      const contentOk = await provider.withUnwrapped(read.envelope.dek, { id: target.id, version: target.version }, async (dek) =>
        store.contentDecrypts ? store.contentDecrypts({ key: itemKey }, read.envelope, dek, signal) : true,
      );
      results.push({ ...base, ok: contentOk, step: contentOk ? 'passed' : 'content', reason: contentOk ? undefined : 'payload-does-not-decrypt' });
    } catch (err) {
      results.push({ ...base, ok: false, step: 'unwrap', reason: (err as { reason?: string }).reason ?? (err as Error).name });
    }
  }
  /* An item cut short by the stop is no failure of the target KEK: no verdict. */
  if (signal?.aborted) return { verdict: 'retry-later', why: 'canary stopped before its end' };
  const failed = results.filter((r) => !r.ok);
  return { verdict: failed.length === 0 ? 'passed' : 'failed', report: { items: results.length, passed: results.length - failed.length, failed } };
}
