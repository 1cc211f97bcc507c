/** `rewrap campaign report`: picks the report kind, opens the sink, writes, says where it went. */
import type { Campaign } from '../ledger/types.ts';
import type { Resources } from '../runtime/resources.ts';
import { ConfigError } from '../core/errors.ts';
import { openReportSink } from './report-sink.ts';
import type { ReportFormat } from './report-format.ts';
import { writeFailuresReport } from './failures-report.ts';
import { writeCompletionReport, type CompletionSummary } from './completion-report.ts';
import { writeBatchCompletionReport, type RangeRows } from './batch-form-reports.ts';
import type { PgTableSource } from '../sources/pg-table-source.ts';
import { pgSourceFor } from '../runtime/pg-source-for.ts';
import { writeExposureReport, type ExposureSummary } from './exposure-report.ts';
import type { NoncurrentContext } from './noncurrent-versions.ts';
import { writeKeksReport, type KeksSummary } from './keks-report.ts';

export const REPORT_KINDS = ['failures', 'completion', 'exposure', 'keks'] as const;
export type ReportKind = (typeof REPORT_KINDS)[number];

export type ReportResult =
  | { kind: 'failures'; location: string; items: number }
  | ({ kind: 'completion'; location: string } & CompletionSummary)
  | ({ kind: 'exposure'; location: string } & ExposureSummary)
  | ({ kind: 'keks'; location: string } & KeksSummary);

export function parseReportOptions(kind: unknown, format: unknown): { kind: ReportKind; format: ReportFormat } {
  const k = kind ?? 'failures';
  if (!REPORT_KINDS.includes(k as ReportKind)) throw new ConfigError(`campaign report --kind: expected ${REPORT_KINDS.join(', ')}`);
  const f = format ?? 'jsonl';
  if (f !== 'jsonl' && f !== 'csv') throw new ConfigError('campaign report --format: expected jsonl or csv');
  return { kind: k as ReportKind, format: f };
}

/**
 * What the exposure report needs to read noncurrent versions. A keyring that cannot be loaded
 * now (moved, its target taken out) leaves the provider unknown: every AES/GCM version whose
 * stamp names no KEK then counts as exposed (cannot tell).
 */
function noncurrentContext(res: Resources, campaign: Campaign): NoncurrentContext {
  let provider: NoncurrentContext['provider'];
  try {
    provider = res.provider(campaign.id, campaign.spec);
  } catch {
    provider = undefined;
  }
  return { s3: (bucket) => res.s3ClientFor(bucket, [campaign.spec]), provider };
}

/** Rows read per statement by `--expand`. */
const EXPAND_PAGE_ROWS = 1000;

/** `--expand`: a batch-form range's rows, read from the campaign's Postgres source of its store. */
function rangeRowsOf(res: Resources, campaign: Campaign): RangeRows {
  const sources = new Map<string, PgTableSource>();
  return (b, floor) => {
    let source = sources.get(b.storeId);
    if (!source) {
      source = pgSourceFor(res, campaign.spec, b.storeId);
      if (!source) return undefined;
      sources.set(b.storeId, source);
    }
    const from = source;
    return (async function* () {
      for (let after = b.lo; ; ) {
        const rows = await from.rowsBetween(after, b.hi, EXPAND_PAGE_ROWS, floor);
        for (const r of rows) yield { key: r.key, kekNow: r.kekId ? { id: r.kekId, ...(r.kekVersion !== null ? { version: r.kekVersion } : {}) } : null };
        if (rows.length < EXPAND_PAGE_ROWS) return;
        after = rows[rows.length - 1]!.key;
      }
    })();
  };
}

/**
 * `force`: replace an existing --out file or S3 object (refused otherwise). `expand`: a batch-form
 * completion report lists every row of its ranges, read from the table (writeBatchCompletionReport).
 */
export async function writeCampaignReport(res: Resources, campaign: Campaign, o: { kind: ReportKind; format: ReportFormat; out?: string; force?: boolean; expand?: boolean }): Promise<ReportResult> {
  if (o.expand && o.kind !== 'completion') throw new ConfigError(`campaign report --expand: only with --kind completion (got --kind ${o.kind})`);
  const sink = await openReportSink(o.out, () => res.s3Client(), o.format === 'csv' ? 'text/csv' : 'application/x-ndjson', { force: o.force });
  try {
    let r: ReportResult;
    if (o.kind === 'failures') r = { kind: 'failures', location: '', ...(await writeFailuresReport(res.ledger, campaign.id, o.format, sink)) };
    else if (o.kind === 'completion') {
      const summary = campaign.ledgerForm === 'batches'
        ? await writeBatchCompletionReport(res.ledger, campaign, o.format, sink, undefined, o.expand ? rangeRowsOf(res, campaign) : undefined)
        : await writeCompletionReport(res.ledger, campaign.id, o.format, sink);
      r = { kind: 'completion', location: '', ...summary };
    }
    else if (o.kind === 'keks') r = { kind: 'keks', location: '', ...(await writeKeksReport(res.ledger, campaign, o.format, sink)) };
    else r = { kind: 'exposure', location: '', ...(await writeExposureReport(res.ledger, campaign, o.format, sink, undefined, noncurrentContext(res, campaign))) };
    r.location = await sink.close();
    return r;
  } catch (err) {
    await sink.abort();
    throw err;
  }
}
