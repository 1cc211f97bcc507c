/**
 * The per-KEK report of a campaign (`rewrap campaign report <id> --kind keks`): one line per
 * entry of its key map (a one-entry map for from/to): source, destination, items moved away from
 * the source, items still under it (read and not moved), of them failed. Items not read yet
 * belong to no entry (the summary's `unattributed`).
 */
import type pg from 'pg';
import type { Campaign } from '../ledger/types.ts';
import { campaignProgress } from '../ledger/index.ts';
import { keyMapCounts } from '../metrics/key-map-counts.ts';
import { lineWriter, type ReportFormat } from './report-format.ts';
import type { ReportSink } from './report-sink.ts';

const COLUMNS = ['from_kek', 'to_kek', 'moved', 'remaining', 'failed'] as const;

export interface KeksSummary {
  entries: number;
  /** Entries with items still under their source (remaining or failed). */
  entriesWithItemsLeft: number;
  /** Items of the campaign without an outcome yet: their KEK is not known until they are read. */
  unattributed: number;
  outsideMap: { moved: number; remaining: number; failed: number };
}

export async function writeKeksReport(pool: pg.Pool, campaign: Campaign, format: ReportFormat, sink: ReportSink): Promise<KeksSummary> {
  const counts = await keyMapCounts(pool, campaign.id, campaign.spec);
  const w = lineWriter<Record<(typeof COLUMNS)[number], string | number>>(format, [...COLUMNS]);
  if (w.header) await sink.write(w.header);
  for (const k of counts.keks) await sink.write(w.line({ from_kek: k.from, to_kek: k.to, moved: k.moved, remaining: k.remaining, failed: k.failed }));
  const p = await campaignProgress(pool, campaign.id);
  return {
    entries: counts.entries,
    entriesWithItemsLeft: counts.keks.filter((k) => k.remaining > 0 || k.failed > 0).length,
    unattributed: p.remaining,
    outsideMap: counts.outsideMap,
  };
}
