/**
 * The completion report of a campaign: every planned item with its outcome (rewrapped, skipped,
 * failed, or pending), reason code, from/to KEK and KMS material id, the KEK the inventory last
 * saw wrapping it, and when it reached its outcome. Like S3 Batch Operations' completion report,
 * with one line per item; nothing secret (ids and reason codes only).
 */
import type { Queryable } from '../ledger/types.ts';
import { campaignItems } from '../ledger/index.ts';
import { kekText, lineWriter, type ReportFormat } from './report-format.ts';
import type { ReportSink } from './report-sink.ts';

export const COMPLETION_COLUMNS = [
  'store', 'item', 'outcome', 'reason', 'from_kek', 'from_material', 'to_kek', 'to_material', 'kek_now', 'at', 'detail',
] as const;
export type CompletionRow = Record<(typeof COMPLETION_COLUMNS)[number], string | null>;

export interface CompletionSummary {
  items: number;
  byOutcome: Record<string, number>;
}

export async function writeCompletionReport(db: Queryable, campaignId: string, format: ReportFormat, sink: ReportSink, pageSize = 2000): Promise<CompletionSummary> {
  const w = lineWriter<CompletionRow>(format, [...COMPLETION_COLUMNS]);
  if (w.header) await sink.write(w.header);
  const byOutcome: Record<string, number> = {};
  let items = 0;
  for (let after: { storeId: string; itemKey: string } | undefined; ; ) {
    const page = await campaignItems(db, campaignId, { limit: pageSize, after });
    for (const r of page) {
      const outcome = r.outcome ?? 'pending';
      byOutcome[outcome] = (byOutcome[outcome] ?? 0) + 1;
      items++;
      await sink.write(
        w.line({
          store: r.storeId,
          item: r.itemKey,
          outcome,
          reason: r.reason,
          from_kek: kekText(r.from) || null,
          from_material: r.from?.materialId ?? null,
          to_kek: kekText(r.to) || null,
          to_material: r.to?.materialId ?? null,
          kek_now: kekText(r.kekNow) || null,
          at: r.doneAt?.toISOString() ?? null,
          detail: r.detail,
        }),
      );
    }
    if (page.length < pageSize) break;
    after = { storeId: page[page.length - 1]!.storeId, itemKey: page[page.length - 1]!.itemKey };
  }
  return { items, byOutcome };
}
