/**
 * The moved items a batch-form batch keeps for the retirement gate to re-read (`rewrap_batches.sample`):
 * one per KEK the batch moved items from, so every source KEK of a key map has samples in the
 * batches that moved it. Written as a JSON list; a batch committed before key maps were taken
 * holds one object, read as a one-entry list.
 */
import type { KekRecord } from './types.ts';

export interface BatchSample {
  key: string;
  from: KekRecord | null;
  to: KekRecord;
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
