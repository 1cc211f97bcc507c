/**
 * Ledger retention (`rewrap ledger prune`, issue 17 point 4): completed and cancelled campaigns
 * that finished before a cutoff lose their per-item detail, after it was archived as the
 * completion report and the archive was read back.
 *
 * Order, per campaign (each step safe to repeat; a prune that stops anywhere is finished by the
 * next one):
 *   1. archive: the completion report (every item, its outcome, reason, KEKs) to
 *      `<archive>/<campaign id>.completion.jsonl`, never over an existing file or object;
 *   2. verify: its size read back (stat, or S3 HeadObject with its ETag) equals what was written;
 *   3. summary: outcomes and the exposure totals computed from the full detail, saved
 *      (rewrap_campaign_summaries) before anything is deleted;
 *   4. delete, in bounded statements of `stepRows` rows: rewrapped and skipped item rows, batches,
 *      per-second progress, noncurrent versions the sweep deleted.
 * A campaign that already has a summary is not archived again (its detail is partial now): the
 * next prune only finishes step 4.
 *
 * Kept, always: rewrap_campaigns, counters, failure-reason counts, the summary; failed items and
 * items without an outcome (a cancelled campaign's unmoved ones); the newest rewrapped item per
 * store and a fixed sample of rewrapped items (keptMovedItems); rewrap_inventory (per store, not
 * per campaign); noncurrent versions still exposed, locked or kept. So the KEK retirement gate
 * decides exactly as before: the same failed and unmoved items block (invariant 7), the same
 * last move starts the grace period, and moved items are still there to sample.
 * Also deleted: the shared-dedupe rows (rewrap_dek_rewraps) of every terminal campaign, whatever
 * its age: nothing rewraps for it again.
 */
import { lstat, stat } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import type { Campaign, CampaignSummary } from '../ledger/types.ts';
import {
  addPrunedRows,
  campaignDetailCounts,
  campaignSummary,
  countTerminalDekRewraps,
  deleteCampaignDetailStep,
  deleteCampaignItemsStep,
  deleteTerminalDekRewrapsStep,
  keptMovedItems,
  prunableCampaigns,
  saveCampaignSummary,
  type DetailTable,
  type ItemKey,
} from '../ledger/index.ts';
import type { Resources } from '../runtime/resources.ts';
import { ConfigError } from '../core/errors.ts';
import { S3_URL_PREFIX } from '../core/store-id.ts';
import { openReportSink, type ReportSink } from './report-sink.ts';
import { writeCompletionReport } from './completion-report.ts';
import { writeExposureReport } from './exposure-report.ts';

export const DEFAULT_PRUNE_STEP_ROWS = 10_000;
export const DEFAULT_KEPT_SAMPLE = 100;

export interface PruneOptions {
  /** Campaigns that finished before this are pruned. */
  cutoff: Date;
  /** file:///dir or s3://bucket/prefix; undefined: no archive (the caller made the user say so). */
  archive?: string;
  dryRun: boolean;
  /** Rows per DELETE statement (default 10,000). */
  stepRows?: number;
  /** Rewrapped items kept per campaign for the retirement gate's sample (default 100). */
  keptSample?: number;
}

export interface PrunedCampaign {
  id: string;
  name: string;
  state: string;
  finishedAt: string;
  /** It had a summary already: not archived again, only what was left is deleted. */
  prunedBefore: boolean;
  archive: CampaignSummary['archive'];
  /** Rows deleted (dry run: that would be deleted). */
  deleted: { items: number; batches: number; progress: number; noncurrentVersions: number };
  /** Item rows kept: failed, without an outcome, and rewrapped ones kept for the retirement gate. */
  kept: { failed: number; pending: number; movedSample: number };
}

export interface PruneResult {
  cutoff: string;
  dryRun: boolean;
  campaigns: PrunedCampaign[];
  /**
   * Finished before the cutoff but left as they are: batch-form campaigns, whose ledger is a row
   * per batch and one per exception already (their exceptions feed the retirement gate).
   */
  skipped: { id: string; name: string; state: string; finishedAt: string; reason: 'batch-ledger-form' }[];
  /** Shared-dedupe rows of terminal campaigns deleted (dry run: that would be). */
  dekRewraps: number;
}

/** Where `--archive` points: a local directory (file:///...) or an S3 prefix (s3://bucket/prefix). */
export function parseArchiveUrl(url: string): { kind: 'file'; dir: string } | { kind: 's3'; bucket: string; prefix: string } {
  if (url.startsWith('file://')) {
    let dir: string;
    try {
      dir = fileURLToPath(url);
    } catch (err) {
      throw new ConfigError(`--archive ${url}: not a file URL; expected file:///absolute/directory`, { cause: err });
    }
    return { kind: 'file', dir };
  }
  const m = url.startsWith(S3_URL_PREFIX) ? /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url) : null;
  if (!m) throw new ConfigError(`--archive ${url}: expected file:///absolute/directory or s3://bucket/prefix`);
  return { kind: 's3', bucket: m[1]!, prefix: (m[2] ?? '').replace(/\/+$/, '') };
}

export async function pruneLedger(res: Resources, o: PruneOptions): Promise<PruneResult> {
  const stepRows = o.stepRows ?? DEFAULT_PRUNE_STEP_ROWS;
  const archive = o.archive === undefined ? undefined : parseArchiveUrl(o.archive);
  if (archive?.kind === 'file') {
    const st = await stat(archive.dir).catch(() => undefined);
    if (!st?.isDirectory()) throw new ConfigError(`--archive ${o.archive}: ${archive.dir} is not a directory; create it first`);
  }
  const campaigns: PrunedCampaign[] = [];
  const skipped: PruneResult['skipped'] = [];
  for (const c of await prunableCampaigns(res.ledger, o.cutoff)) {
    if (c.ledgerForm === 'batches') skipped.push({ id: c.id, name: c.name, state: c.state, finishedAt: c.finishedAt!.toISOString(), reason: 'batch-ledger-form' });
    else campaigns.push(await pruneCampaign(res, c, archive, o, stepRows));
  }
  let dekRewraps = 0;
  if (o.dryRun) dekRewraps = await countTerminalDekRewraps(res.ledger);
  else for (let n; (n = await deleteTerminalDekRewrapsStep(res.ledger, stepRows)) > 0; ) dekRewraps += n;
  return { cutoff: o.cutoff.toISOString(), dryRun: o.dryRun, campaigns, skipped, dekRewraps };
}

async function pruneCampaign(res: Resources, c: Campaign, archive: ReturnType<typeof parseArchiveUrl> | undefined, o: PruneOptions, stepRows: number): Promise<PrunedCampaign> {
  const db = res.ledger;
  const counts = await campaignDetailCounts(db, c.id);
  const keep = await keptMovedItems(db, c.id, o.keptSample ?? DEFAULT_KEPT_SAMPLE);
  const n = (k: string) => counts.itemsByOutcome[k] ?? 0;
  const before = await campaignSummary(db, c.id);
  const result: PrunedCampaign = {
    id: c.id,
    name: c.name,
    state: c.state,
    finishedAt: c.finishedAt!.toISOString(),
    prunedBefore: before !== undefined,
    archive: before?.archive ?? null,
    deleted: { items: n('rewrapped') + n('skipped') - keep.length, batches: counts.batches, progress: counts.progress, noncurrentVersions: counts.noncurrentDeleted },
    kept: { failed: n('failed'), pending: n('pending'), movedSample: keep.length },
  };
  if (o.dryRun) {
    if (!before && archive) result.archive = { location: shownLocation(archive, c.id), bytes: 0 };
    return result;
  }
  if (!before) {
    /* Postcondition: nothing is deleted before the archive is written, read back, and the summary saved. */
    const archived = archive ? await archiveCampaign(res, c, archive) : null;
    const exposure = await writeExposureReport(db, c, 'jsonl', discardingSink());
    await saveCampaignSummary(db, {
      campaignId: c.id,
      archive: archived,
      outcomes: counts.itemsByOutcome,
      exposure: { compromisedKek: exposure.compromisedKek, totals: exposure.totals, exposedByStore: exposure.exposedByStore, stillUnderKekByStore: exposure.stillUnderKekByStore, firstMovedAt: exposure.firstMovedAt, lastMovedAt: exposure.lastMovedAt, timeline: exposure.timeline },
    });
    result.archive = archived;
  }
  result.deleted = { items: await deleteItems(res, c.id, keep, stepRows), batches: 0, progress: 0, noncurrentVersions: 0 };
  for (const [what, field] of [['batches', 'batches'], ['progress', 'progress'], ['noncurrent', 'noncurrentVersions']] as const) {
    result.deleted[field] = await deleteAll(res, c.id, what as DetailTable, stepRows);
  }
  return result;
}

async function deleteItems(res: Resources, campaignId: string, keep: ItemKey[], stepRows: number): Promise<number> {
  let total = 0;
  for (let after: ItemKey | null = null, first = true; first || after !== null; first = false) {
    const step = await deleteCampaignItemsStep(res.ledger, campaignId, keep, after, stepRows);
    if (step.deleted > 0) await addPrunedRows(res.ledger, campaignId, step.deleted);
    total += step.deleted;
    after = step.next;
  }
  return total;
}

async function deleteAll(res: Resources, campaignId: string, what: DetailTable, stepRows: number): Promise<number> {
  let total = 0;
  for (let n; (n = await deleteCampaignDetailStep(res.ledger, campaignId, what, stepRows)) > 0; ) {
    await addPrunedRows(res.ledger, campaignId, n);
    total += n;
  }
  return total;
}

function archiveLocation(a: ReturnType<typeof parseArchiveUrl>, campaignId: string): string {
  const name = `${campaignId}.completion.jsonl`;
  return a.kind === 'file' ? join(a.dir, name) : `s3://${a.bucket}/${a.prefix ? `${a.prefix}/` : ''}${name}`;
}

/** The archive as a URL (file:///... or s3://...), as the summary records it. */
function shownLocation(a: ReturnType<typeof parseArchiveUrl>, campaignId: string): string {
  const at = archiveLocation(a, campaignId);
  return a.kind === 'file' ? pathToFileURL(at).href : at;
}

/** Writes the completion report to the archive and reads its size back (and its ETag from S3). */
async function archiveCampaign(res: Resources, c: Campaign, a: ReturnType<typeof parseArchiveUrl>): Promise<NonNullable<CampaignSummary['archive']>> {
  const location = archiveLocation(a, c.id);
  if (await archiveExists(res, a, location)) {
    throw new ConfigError(
      `campaign ${c.id}: cannot archive to ${shownLocation(a, c.id)}: it already exists (an earlier prune that stopped before saving the summary, or another ledger's campaign); nothing of the campaign was deleted. Fix: check that object, move or delete it, and run prune again`,
    );
  }
  const sink = await openReportSink(location, () => res.s3Client(), 'application/x-ndjson').catch((err: unknown) => {
    throw new ConfigError(`campaign ${c.id}: cannot archive to ${location}: ${(err as Error).message}`, { cause: err });
  });
  let bytes = 0;
  const counting: ReportSink = {
    write: (line) => {
      bytes += Buffer.byteLength(line) + 1;
      return sink.write(line);
    },
    close: () => sink.close(),
    abort: () => sink.abort(),
  };
  try {
    await writeCompletionReport(res.ledger, c.id, 'jsonl', counting);
    await counting.close();
  } catch (err) {
    await sink.abort();
    throw err;
  }
  if (a.kind === 'file') {
    const { size } = await stat(location);
    if (size !== bytes) throw new Error(`campaign ${c.id}: archive ${location} holds ${size} bytes, ${bytes} were written; nothing was pruned`);
    return { location: shownLocation(a, c.id), bytes };
  }
  const key = location.slice(`s3://${a.bucket}/`.length);
  const head = await res.s3Client().send(new HeadObjectCommand({ Bucket: a.bucket, Key: key }));
  if (head.ContentLength !== bytes) throw new Error(`campaign ${c.id}: archive ${location} holds ${head.ContentLength} bytes, ${bytes} were written; nothing was pruned`);
  return { location, bytes, ...(head.ETag ? { etag: head.ETag } : {}) };
}

async function archiveExists(res: Resources, a: ReturnType<typeof parseArchiveUrl>, location: string): Promise<boolean> {
  if (a.kind === 'file') return (await lstat(location).catch(() => undefined)) !== undefined;
  try {
    await res.s3Client().send(new HeadObjectCommand({ Bucket: a.bucket, Key: location.slice(`s3://${a.bucket}/`.length) }));
    return true;
  } catch (err) {
    if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false;
    throw new Error(`cannot check whether the archive ${location} exists`, { cause: err });
  }
}

function discardingSink(): ReportSink {
  return { write: async () => {}, close: async () => 'discarded', abort: async () => {} };
}
