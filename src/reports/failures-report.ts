/** The failures report (the default of `rewrap campaign report`): every failed item with its reason code. */
import type { Queryable } from '../ledger/types.ts';
import { campaignFailures } from '../ledger/index.ts';
import { kekText, lineWriter, type ReportFormat } from './report-format.ts';
import type { ReportSink } from './report-sink.ts';

const COLUMNS = ['store', 'item', 'reason', 'detail', 'from_kek', 'at'] as const;

export async function writeFailuresReport(db: Queryable, campaignId: string, format: ReportFormat, sink: ReportSink): Promise<{ items: number }> {
  const w = lineWriter<Record<(typeof COLUMNS)[number], string | null>>(format, [...COLUMNS]);
  if (w.header) await sink.write(w.header);
  let items = 0;
  for (let after: { storeId: string; itemKey: string } | undefined; ; ) {
    const page = await campaignFailures(db, campaignId, { limit: 1000, after });
    for (const f of page) {
      items++;
      // JSONL keeps the fields it always had (outcome, from as an object).
      await sink.write(
        format === 'csv'
          ? w.line({ store: f.storeId, item: f.itemKey, reason: f.reason, detail: f.detail, from_kek: kekText(f.from), at: f.doneAt?.toISOString() ?? null })
          : JSON.stringify({ store: f.storeId, item: f.itemKey, outcome: 'failed', reason: f.reason, detail: f.detail, from: f.from, at: f.doneAt }),
      );
    }
    if (page.length < 1000) break;
    after = { storeId: page[page.length - 1]!.storeId, itemKey: page[page.length - 1]!.itemKey };
  }
  return { items };
}
