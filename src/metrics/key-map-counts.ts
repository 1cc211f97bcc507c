/**
 * Per-KEK counters of a key-map campaign, for status, the API and reports: for each entry of
 * the map, items moved away from its source KEK, items still under it (seen by the campaign and
 * not moved: skipped or failed) and, of those, failed. Items not read yet belong to no entry
 * until a worker reads them: `unattributed` (the campaign's remaining items).
 */
import type pg from 'pg';
import { campaignKekCounts, type KekCountRow } from '../ledger/index.ts';
import { KEK_LABEL_LIMIT, keyMapOf, type CampaignSpec } from '../core/campaign-spec.ts';
import { formatKek } from '../core/kek-ref.ts';
import { KekMap } from '../kek/kek-map.ts';

export interface KekCounts {
  from: string;
  to: string;
  moved: number;
  remaining: number;
  failed: number;
}

export interface KeyMapCounts {
  entries: number;
  /** Every entry, in map order (a map of 100,000 entries gives 100,000 rows: reports page them). */
  keks: KekCounts[];
  /** Items the campaign saw under a KEK of no entry, or under no KEK it could tell (failed). */
  outsideMap: { moved: number; remaining: number; failed: number };
}

export function countsByEntry(spec: CampaignSpec, rows: readonly KekCountRow[]): KeyMapCounts {
  const entries = keyMapOf(spec);
  const map = new KekMap(entries);
  const byEntry = new Map(entries.map((e) => [e, { from: formatKek(e.from), to: formatKek(e.to), moved: 0, remaining: 0, failed: 0 }]));
  const outsideMap = { moved: 0, remaining: 0, failed: 0 };
  for (const r of rows) {
    const e = r.kekId === null ? undefined : map.entryFor({ id: r.kekId, version: r.kekVersion ?? undefined, materialId: r.kekVersion ?? undefined }, spec.provider.type === 'kms');
    if (!e && r.kekId !== null && map.isDestination({ id: r.kekId, version: r.kekVersion ?? undefined })) continue; // already at its target
    const c = e ? byEntry.get(e)! : outsideMap;
    c.moved += r.moved;
    c.remaining += r.under;
    c.failed += r.failed;
  }
  return { entries: entries.length, keks: [...byEntry.values()], outsideMap };
}

export async function keyMapCounts(pool: pg.Pool, id: string, spec: CampaignSpec): Promise<KeyMapCounts> {
  return countsByEntry(spec, await campaignKekCounts(pool, id));
}

/** For a human view: every entry of a small map, else the entries with something left, worst first, at most `limit`. */
export function entriesToShow(c: KeyMapCounts, limit = KEK_LABEL_LIMIT): KekCounts[] {
  if (c.keks.length <= limit) return c.keks;
  return c.keks
    .filter((k) => k.remaining > 0 || k.failed > 0)
    .sort((a, b) => b.failed - a.failed || b.remaining - a.remaining)
    .slice(0, limit);
}

/** "tenant-a@1" for one source KEK; "key map of 1000 KEKs" for a map (status lines, API summaries). */
export function describeKeks(spec: CampaignSpec): { from: string; to: string } {
  if (spec.keyMapRule && !spec.keyMap) return { from: spec.keyMapRule.text.from, to: spec.keyMapRule.text.to };
  const map = keyMapOf(spec);
  if (map.length === 1 && !spec.keyMap) return { from: formatKek(map[0]!.from), to: formatKek(map[0]!.to) };
  const n = map.length;
  return { from: `key map of ${n} source KEK${n === 1 ? '' : 's'}`, to: `${new Set(map.map((e) => formatKek(e.to))).size} destination KEK(s)` };
}
