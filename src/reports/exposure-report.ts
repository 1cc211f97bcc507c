/**
 * The exposure report of an incident campaign: every item that was under the compromised KEK
 * (the campaign's `from`), whether and when it was moved, and what is still exposed, with totals
 * and a timeline of items moved per minute.
 *   moved              the campaign rewrapped it (moved_at = when, to_kek = where to);
 *   moved-unconfirmed  the campaign found it already at the target (reason already-at-target)
 *            after an earlier claim of its batch may have written it and lost the reply or the
 *            commit, or the inventory last saw it under the compromised KEK: it may well have
 *            been under the KEK until a write whose confirmation was lost (moved_at = when the
 *            campaign found it moved, kek_now = where it is). Never counted "never under it".
 *   exposed  still under the compromised KEK as far as rewrap knows: not moved yet, or it failed
 *            for a reason that leaves it under the KEK (kek-disabled, invalid-ciphertext, an
 *            envelope rewrap cannot read such as unsupported-v1 whose matdesc names the KEK or no
 *            KEK that can be decided, ...), unless the inventory saw it under another KEK at or
 *            after that failure. For a KMS key material, an item seen under the key with no
 *            material recorded may be under it: it counts.
 * Items that were never under it (skipped as not-under-source or already at the target in a batch
 * claimed once, moved from another material of the key by a rotate-on-demand drain, unreadable
 * but naming another KEK) and items under no KEK at all (item-missing, not-encrypted) are counted
 * in the totals, not listed.
 *   exposed-noncurrent  a noncurrent version (version_id) of an object in a versioned or
 *            versioning-suspended bucket of the scope whose envelope is (or may be) under the
 *            compromised KEK: every rewrite leaves one behind; exposed until deleted
 *            (noncurrent-versions.ts). Listed only when the report is given an S3 client.
 * `stillUnderKekByStore` adds what the ledger knows beyond this campaign, over every campaign that
 * drained the compromised KEK: items the inventory saw under it, planned and not moved, or failed.
 */
import { singleKekOf } from '../core/campaign-spec.ts';
import type { Campaign, KekRecord, Queryable } from '../ledger/types.ts';
import { campaignItems, campaignsFromKek, itemsMovedPerMinute, kekUsage } from '../ledger/index.ts';
import { formatKek, type KekSelector } from '../core/kek-ref.ts';
import { mayBeUnder } from '../core/kms-material.ts';
import { UNDER_NO_KEK_REASONS } from '../core/reasons.ts';
import { kekText, lineWriter, type ReportFormat } from './report-format.ts';
import type { ReportSink } from './report-sink.ts';
import { forEachNoncurrentExposed, type NoncurrentContext } from './noncurrent-versions.ts';
import { writeBatchExposureLines } from './batch-form-reports.ts';

export const EXPOSURE_COLUMNS = ['store', 'item', 'status', 'moved_at', 'to_kek', 'reason', 'kek_now', 'version_id'] as const;
export type ExposureRow = Record<(typeof EXPOSURE_COLUMNS)[number], string | null>;

/** Failures that leave an item under no KEK (invariant 7: every other one may leave it under the compromised KEK). */
const UNDER_NO_KEK = new Set<string>(UNDER_NO_KEK_REASONS);
export type ExposureStatus = 'moved' | 'moved-unconfirmed' | 'exposed' | 'exposed-noncurrent';

export interface ExposureSummary {
  campaignId: string;
  compromisedKek: string;
  state: string;
  totals: { underKek: number; moved: number; movedUnconfirmed: number; exposed: number; neverUnderKek: number; noEnvelope: number; noncurrentExposed: number };
  exposedByStore: Record<string, number>;
  noncurrentExposedByStore: Record<string, number>;
  /** Buckets whose noncurrent versions could not be checked, a message each. */
  noncurrentUnchecked: string[];
  stillUnderKekByStore: Record<string, number>;
  firstMovedAt: string | null;
  lastMovedAt: string | null;
  timeline: { minute: string; moved: number }[];
  /** Batch form: ranges claimed again after a claim that may have moved items without counting them. */
  unconfirmedRanges?: number;
}

const under = (k: KekRecord | null, c: KekSelector) => k !== null && mayBeUnder(k, c);

export async function writeExposureReport(db: Queryable, campaign: Campaign, format: ReportFormat, sink: ReportSink, pageSize = 2000, noncurrent?: NoncurrentContext): Promise<ExposureSummary> {
  /* An exposure is of one compromised KEK (an incident campaign); a key map campaign has many: refused with a clear message. */
  const compromised = singleKekOf(campaign.spec, 'the exposure report').from;
  if (campaign.ledgerForm === 'batches') {
    /* A line per range and per exception (batch-form-reports.ts); a pg-only campaign has no noncurrent versions. */
    const lines = await writeBatchExposureLines(db, campaign, compromised, format, sink);
    return { ...(await exposureSummary(db, campaign, compromised, lines.totals, lines.exposedByStore, {}, [])), unconfirmedRanges: lines.unconfirmedRanges };
  }
  const w = lineWriter<ExposureRow>(format, [...EXPOSURE_COLUMNS]);
  if (w.header) await sink.write(w.header);
  const totals = { underKek: 0, moved: 0, movedUnconfirmed: 0, exposed: 0, neverUnderKek: 0, noEnvelope: 0, noncurrentExposed: 0 };
  const exposedByStore: Record<string, number> = {};
  for (let after: { storeId: string; itemKey: string } | undefined; ; ) {
    const page = await campaignItems(db, campaign.id, { limit: pageSize, after });
    for (const r of page) {
      let status: ExposureStatus;
      /* What the inventory says, unless it is older than this campaign's failure of the item (a failure that named no KEK). */
      const kekNow = r.outcome === 'failed' && r.kekNowAt !== null && r.doneAt !== null && r.kekNowAt < r.doneAt ? null : r.kekNow;
      if (r.outcome === 'rewrapped') {
        /* A rotate-on-demand drain also moves items it finds under other materials of the key. */
        if (r.from !== null && !under(r.from, compromised)) {
          totals.neverUnderKek++;
          continue;
        }
        status = 'moved';
      } else if (r.outcome === 'skipped') {
        /* A write whose reply or commit was lost comes back as already-at-target on the next claim. */
        const unconfirmed = (r.reason === 'already-at-target' && r.batchRetried) || under(r.kekNow, compromised);
        if (!unconfirmed) {
          totals.neverUnderKek++;
          continue;
        }
        status = 'moved-unconfirmed';
      } else if (r.outcome === 'failed' && UNDER_NO_KEK.has(r.reason ?? '')) {
        totals.noEnvelope++;
        continue;
      } else if (kekNow !== null && !under(kekNow, compromised)) {
        totals.neverUnderKek++;
        continue;
      } else status = 'exposed';
      totals.underKek++;
      if (status === 'moved-unconfirmed') totals.movedUnconfirmed++;
      else totals[status as 'moved' | 'exposed']++;
      if (status === 'exposed') exposedByStore[r.storeId] = (exposedByStore[r.storeId] ?? 0) + 1;
      await sink.write(
        w.line({
          store: r.storeId,
          item: r.itemKey,
          status,
          moved_at: status === 'exposed' ? null : (r.doneAt?.toISOString() ?? null),
          to_kek: status === 'moved' ? kekText(r.to) : status === 'moved-unconfirmed' ? kekText(r.kekNow) || null : null,
          reason: status === 'exposed' ? (r.reason ?? 'not-moved-yet') : status === 'moved-unconfirmed' ? r.reason : null,
          kek_now: kekText(r.kekNow) || null,
          version_id: null,
        }),
      );
    }
    if (page.length < pageSize) break;
    after = { storeId: page[page.length - 1]!.storeId, itemKey: page[page.length - 1]!.itemKey };
  }
  const noncurrentExposedByStore: Record<string, number> = {};
  const noncurrentUnchecked = !noncurrent
    ? []
    : await forEachNoncurrentExposed(noncurrent, campaign.spec, async (v) => {
        totals.noncurrentExposed++;
        noncurrentExposedByStore[v.storeId] = (noncurrentExposedByStore[v.storeId] ?? 0) + 1;
        await sink.write(
          w.line({ store: v.storeId, item: v.key, status: 'exposed-noncurrent', moved_at: null, to_kek: null, reason: 'noncurrent-version', kek_now: kekText(v.kek) || null, version_id: v.versionId }),
        );
      });
  return exposureSummary(db, campaign, compromised, totals, exposedByStore, noncurrentExposedByStore, noncurrentUnchecked);
}

/** The summary around the lines: what the ledger knows beyond this campaign, and the timeline. */
async function exposureSummary(
  db: Queryable,
  campaign: Campaign,
  compromised: KekSelector,
  totals: ExposureSummary['totals'],
  exposedByStore: Record<string, number>,
  noncurrentExposedByStore: Record<string, number>,
  noncurrentUnchecked: string[],
): Promise<ExposureSummary> {
  const stillUnderKekByStore: Record<string, number> = {};
  const drained = await campaignsFromKek(db, compromised);
  const usage = await kekUsage(db, compromised, drained.map((c) => c.id), UNDER_NO_KEK_REASONS);
  for (const u of usage.stores) {
    const n = u.underKek + u.notYetMoved + u.failedNotMoved;
    if (n > 0) stillUnderKekByStore[u.storeId] = n;
  }
  const timeline = (await itemsMovedPerMinute(db, campaign.id)).map((t) => ({ minute: t.minute.toISOString(), moved: t.items }));
  return {
    campaignId: campaign.id,
    compromisedKek: formatKek(compromised),
    state: campaign.state,
    totals,
    exposedByStore,
    noncurrentExposedByStore,
    noncurrentUnchecked,
    stillUnderKekByStore,
    firstMovedAt: timeline[0]?.minute ?? null,
    lastMovedAt: timeline[timeline.length - 1]?.minute ?? null,
    timeline,
  };
}
