/**
 * The moved items a batch-form batch keeps for the retirement gate to re-read (`rewrap_batches.sample`):
 * for each KEK the batch moved items from, so that every source KEK of a key map has samples in
 * the batches that moved it, up to samplesPerKek(batch number) of them (spread over the batch).
 * Written as a JSON list; a batch committed before key maps were taken holds one object, read as
 * a one-entry list.
 */
import type { KekRecord } from './types.ts';

export interface BatchSample {
  key: string;
  from: KekRecord | null;
  to: KekRecord;
}

/**
 * The moved items per source KEK that batch `batchNo` (1, 2, ...) keeps: FRONT_SAMPLES / batchNo,
 * at least one. One per batch left a small campaign with a handful to re-read (`kek retire
 * --sample 50` over 4 batches checked 4) before an irreversible step; this way a campaign's
 * first batches keep more, and batches 1..n keep about FRONT_SAMPLES * (ln n + 0.6) + n items in
 * all: at least `kek retire`'s default 50 whenever the campaign moved that many, and, for a
 * billion items in batches of 500 (n = 2,000,000), ~1,000 more than one per batch (~100 kB).
 */
export const FRONT_SAMPLES = 64;

export function samplesPerKek(batchNo: number): number {
  return Math.max(1, Math.ceil(FRONT_SAMPLES / Math.max(1, batchNo)));
}

/**
 * `kept` with the moved items of `moved` added, per source KEK, until that KEK has `cap` samples:
 * every k-th of its moved items (k = its count / what is missing), not only the batch's first.
 */
export function addSamples(kept: BatchSample[], moved: readonly BatchSample[], cap: number): BatchSample[] {
  const out = [...kept];
  const have = new Map<string, number>();
  for (const s of kept) have.set(kekKey(s.from), (have.get(kekKey(s.from)) ?? 0) + 1);
  const byKek = new Map<string, BatchSample[]>();
  for (const m of moved) {
    const k = kekKey(m.from);
    let list = byKek.get(k);
    if (!list) byKek.set(k, (list = []));
    list.push(m);
  }
  for (const [k, list] of byKek) {
    const missing = cap - (have.get(k) ?? 0);
    if (missing <= 0) continue;
    const step = list.length / Math.min(missing, list.length);
    for (let i = 0; i < Math.min(missing, list.length); i++) out.push(list[Math.floor(i * step)]!);
  }
  return out;
}

export function batchSamples(stored: BatchSample | BatchSample[] | null | undefined): BatchSample[] {
  if (stored === null || stored === undefined) return [];
  return Array.isArray(stored) ? [...stored] : [stored];
}

/** A KEK as one string, [id, version, material] (nulls where unknown): the keys of `keks`/`from_keks` and of the samples. */
export function kekKey(k: KekRecord | null | undefined): string {
  return JSON.stringify([k?.id ?? null, k?.version ?? null, k?.materialId ?? null]);
}

/** The SQL that lists a `sample` column's entries (a list, or one object), as jsonb rows named `s`. */
export const SAMPLE_ENTRIES_SQL = (column: string) =>
  `jsonb_array_elements(CASE jsonb_typeof(${column}) WHEN 'array' THEN ${column} ELSE jsonb_build_array(${column}) END)`;
