/**
 * The completion and exposure reports of a batch-form campaign (README, "The batch ledger form";
 * docs/batch-ledger-design.md, decision 6): the ledger holds a row per range, not per item, so
 * the reports list a line per range with its counts, and a line per exception item (failed,
 * skipped with a reason). `range_lo`/`range_hi` are the batch's ids: lo < id <= hi (lo empty:
 * from the start of the table); `pass` says whether the plan cut it (the plan's ranges cover the
 * table up to its last id, one after the other) or a delta pass (rows still under the source KEK
 * later, including exceptions it then leaves out). Nothing secret: ids, counts and reason codes only.
 */
import type { Campaign, KekRecord, Queryable } from '../ledger/types.ts';
import { campaignBatches, type BatchException, type CampaignBatchRow } from '../ledger/index.ts';
import type { KekSelector } from '../core/kek-ref.ts';
import { mayBeUnder } from '../core/kms-material.ts';
import { UNDER_NO_KEK_REASONS } from '../core/reasons.ts';
import { kekText, lineWriter, type ReportFormat } from './report-format.ts';
import type { ReportSink } from './report-sink.ts';
import type { CompletionSummary } from './completion-report.ts';

export const BATCH_COMPLETION_COLUMNS = [
  'store', 'pass', 'range_lo', 'range_hi', 'item', 'outcome', 'reason', 'rewrapped', 'skipped', 'failed', 'from_kek', 'to_kek', 'kek_now', 'at', 'detail', 'retried',
] as const;
type BatchCompletionRow = Record<(typeof BATCH_COMPLETION_COLUMNS)[number], string | number | null>;

export const BATCH_EXPOSURE_COLUMNS = ['store', 'range_lo', 'range_hi', 'item', 'status', 'items', 'moved_at', 'to_kek', 'reason', 'kek_now'] as const;
type BatchExposureRow = Record<(typeof BATCH_EXPOSURE_COLUMNS)[number], string | number | null>;

const UNDER_NO_KEK = new Set<string>(UNDER_NO_KEK_REASONS);
const iso = (d: Date | null | undefined) => d?.toISOString() ?? null;

async function forEachBatch(db: Queryable, campaignId: string, pageSize: number, fn: (b: CampaignBatchRow) => Promise<void>): Promise<void> {
  for (let after: number | undefined; ; ) {
    const page = await campaignBatches(db, campaignId, { limit: pageSize, afterBatchNo: after });
    for (const b of page) await fn(b);
    if (page.length < pageSize) return;
    after = page[page.length - 1]!.batchNo;
  }
}

/**
 * `campaign report --expand`: the rows of a range as the store holds them now (id, KEK id and
 * version), in id order, above `floor` when given; undefined when the batch's store cannot be
 * read so (not a table).
 */
export type RangeRows = (b: CampaignBatchRow, floor: string | null) => AsyncIterable<{ key: string; kekNow: KekRecord | null }> | undefined;

/**
 * Outcomes: `batch` (a done range: its counts), `pending` (a range not done yet: `rewrapped` ...
 * so far), and each exception's own outcome. `retried`: the range was claimed again after a
 * claim that may have moved items without counting them (a lost commit).
 * `expand`: after each range and its exceptions, a `row` line per other row of the range as the
 * table holds it now (item, kek_now): the ledger counts per range, so a row's own line can only
 * say what wraps it now, read from the store (slow: every row is read). A delta pass's range
 * re-covers rows of the plan's ranges: only its rows above the plan's last id are listed, so each
 * row is listed once.
 */
export async function writeBatchCompletionReport(db: Queryable, campaign: Campaign, format: ReportFormat, sink: ReportSink, pageSize = 500, expand?: RangeRows): Promise<CompletionSummary> {
  const w = lineWriter<BatchCompletionRow>(format, [...BATCH_COMPLETION_COLUMNS]);
  if (w.header) await sink.write(w.header);
  const byOutcome: Record<string, number> = {};
  let items = 0;
  const from = campaign.spec.from ?? null;
  const to = campaign.spec.to ?? null;
  /* The plan's last id per store (its ranges come first, in id order). */
  const planEnd = new Map<string, string>();
  await forEachBatch(db, campaign.id, pageSize, async (b) => {
    const done = b.state === 'done';
    for (const [k, n] of [['rewrapped', b.rewrapped], ['skipped', b.skipped], ['failed', b.failed]] as const) byOutcome[k] = (byOutcome[k] ?? 0) + n;
    items += b.rewrapped + b.skipped + b.failed;
    if (!done) byOutcome.pendingBatches = (byOutcome.pendingBatches ?? 0) + 1;
    const range = { store: b.storeId, pass: b.delta ? 'delta' : 'plan', range_lo: b.lo, range_hi: b.hi };
    await sink.write(
      w.line({
        ...range, item: null, outcome: done ? 'batch' : 'pending', reason: null, rewrapped: b.rewrapped, skipped: b.skipped, failed: b.failed,
        from_kek: kekList(b.samples.map((s) => s.from), from), to_kek: kekList(b.samples.map((s) => s.to), to), kek_now: null,
        at: iso(b.doneAt ?? b.movedAt), detail: b.unconfirmed > 0 ? `${b.unconfirmed} of the skipped were not read again after a retry (moved-unconfirmed)` : null,
        retried: b.retried ? 'true' : 'false',
      }),
    );
    for (const e of b.exceptions) {
      await sink.write(
        w.line({
          ...range, item: e.itemKey, outcome: e.outcome, reason: e.reason, rewrapped: null, skipped: null, failed: null,
          from_kek: kekText(e.from) || null, to_kek: null, kek_now: kekText(e.kekNow) || null, at: iso(e.at), detail: e.detail, retried: null,
        }),
      );
    }
    if (!b.delta && b.hi !== null) planEnd.set(b.storeId, b.hi);
    const rows = expand?.(b, b.delta ? (planEnd.get(b.storeId) ?? null) : null);
    if (!rows) return;
    const excepted = new Set(b.exceptions.map((e) => e.itemKey));
    for await (const r of rows) {
      if (excepted.has(r.key)) continue;
      byOutcome.rows = (byOutcome.rows ?? 0) + 1;
      await sink.write(
        w.line({
          ...range, item: r.key, outcome: 'row', reason: null, rewrapped: null, skipped: null, failed: null,
          from_kek: null, to_kek: null, kek_now: kekText(r.kekNow) || null, at: null, detail: null, retried: null,
        }),
      );
    }
  });
  return { items, byOutcome };
}

export interface BatchExposureTotals {
  underKek: number;
  moved: number;
  movedUnconfirmed: number;
  exposed: number;
  neverUnderKek: number;
  noEnvelope: number;
  noncurrentExposed: number;
}

/** What a batch-form exposure report lists, and its totals (exposure-report.ts writes the summary around it). */
export async function writeBatchExposureLines(
  db: Queryable,
  campaign: Campaign,
  compromised: KekSelector,
  format: ReportFormat,
  sink: ReportSink,
  pageSize = 500,
): Promise<{ totals: BatchExposureTotals; exposedByStore: Record<string, number>; unconfirmedRanges: number }> {
  const w = lineWriter<BatchExposureRow>(format, [...BATCH_EXPOSURE_COLUMNS]);
  if (w.header) await sink.write(w.header);
  const totals: BatchExposureTotals = { underKek: 0, moved: 0, movedUnconfirmed: 0, exposed: 0, neverUnderKek: 0, noEnvelope: 0, noncurrentExposed: 0 };
  const exposedByStore: Record<string, number> = {};
  let unconfirmedRanges = 0;
  const exposed = (storeId: string, n: number) => {
    totals.exposed += n;
    totals.underKek += n;
    exposedByStore[storeId] = (exposedByStore[storeId] ?? 0) + n;
  };
  const to = campaign.spec.to ?? null;
  await forEachBatch(db, campaign.id, pageSize, async (b) => {
    const range = { store: b.storeId, range_lo: b.lo, range_hi: b.hi };
    if (b.rewrapped > 0) {
      totals.moved += b.rewrapped;
      totals.underKek += b.rewrapped;
      await sink.write(w.line({ ...range, item: null, status: 'moved', items: b.rewrapped, moved_at: iso(b.doneAt ?? b.movedAt), to_kek: kekList(b.samples.map((s) => s.to), to), reason: null, kek_now: null }));
    }
    if (b.retried) {
      /*
       * A claim that lost its commit may have moved items of the range the next claim no longer
       * read: once the range is done, the rows its plan counted that no commit did (unconfirmed);
       * before, how many is not known.
       */
      unconfirmedRanges++;
      const n = b.state === 'done' ? b.unconfirmed : null;
      if (n) {
        totals.movedUnconfirmed += n;
        totals.underKek += n;
      }
      await sink.write(w.line({ ...range, item: null, status: 'moved-unconfirmed', items: n, moved_at: iso(b.doneAt), to_kek: kekText(to) || null, reason: 'batch-retried', kek_now: null }));
    }
    if (b.state !== 'done') {
      /* Cannot tell what a range not done yet holds: at least one item, as the retirement gate counts it. */
      const n = Math.max(b.planned - b.rewrapped - b.skipped - b.failed, 1);
      exposed(b.storeId, n);
      await sink.write(w.line({ ...range, item: null, status: 'exposed', items: n, moved_at: null, to_kek: null, reason: 'not-moved-yet', kek_now: null }));
    }
    for (const e of b.exceptions) await exceptionLine(e, b, range);
  });
  return { totals, exposedByStore, unconfirmedRanges };

  async function exceptionLine(e: BatchException, b: CampaignBatchRow, range: { store: string; range_lo: string | null; range_hi: string }) {
    const underIt = e.kekNow !== null && mayBeUnder(e.kekNow as KekRecord, compromised);
    if (e.outcome === 'failed' && UNDER_NO_KEK.has(e.reason)) {
      totals.noEnvelope++;
      return;
    }
    if (e.outcome === 'skipped' && !underIt) {
      /* At the target on a second claim of its range: an earlier claim may have moved it and lost the commit. */
      if (e.reason === 'already-at-target' && b.retried) {
        totals.movedUnconfirmed++;
        totals.underKek++;
        await sink.write(w.line({ ...range, item: e.itemKey, status: 'moved-unconfirmed', items: 1, moved_at: iso(e.at), to_kek: kekText(e.kekNow) || null, reason: e.reason, kek_now: kekText(e.kekNow) || null }));
      } else totals.neverUnderKek++;
      return;
    }
    /* A failure that names another KEK was never under it; one that names none may be (invariant 7). */
    if (e.outcome === 'failed' && e.kekNow !== null && !underIt) {
      totals.neverUnderKek++;
      return;
    }
    exposed(range.store, 1);
    await sink.write(w.line({ ...range, item: e.itemKey, status: 'exposed', items: 1, moved_at: null, to_kek: null, reason: e.reason, kek_now: kekText(e.kekNow) || null }));
  }
}

/** The KEKs of a range's samples (a key map's range may have moved items of several), comma-separated; the campaign's own otherwise. */
function kekList(keks: (Parameters<typeof kekText>[0] | null)[], fallback: Parameters<typeof kekText>[0] | null): string | null {
  const names = [...new Set(keks.map((k) => (k ? kekText(k) : '')).filter(Boolean))];
  return names.length > 0 ? names.join(',') : (fallback ? kekText(fallback) : '') || null;
}
