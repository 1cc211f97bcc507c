/** `rewrap ledger prune`: archive, then delete the per-item detail of old finished campaigns (src/reports/ledger-retention.ts). */
import { EXIT, UsageError, out, type Command } from './args.ts';
import { withLedger } from './with-ledger.ts';
import { parseDuration } from '../retirement/retire-kek.ts';
import { DEFAULT_PRUNE_STEP_ROWS, pruneLedger, type PruneResult } from '../reports/ledger-retention.ts';

const prune: Command = {
  name: 'ledger prune',
  summary: 'Archive the completion report of old completed/cancelled campaigns, then delete their per-item rows (the summary stays).',
  usage: `rewrap ledger prune --older-than <duration> (--archive file:///dir | --archive s3://bucket/prefix | --no-archive) [--dry-run] [--step-rows 10000] [--json]

  Prunes campaigns in state completed or cancelled whose finished_at is older than --older-than
  (e.g. 90d, 12h; units ms, s, m, h, d). Running or paused campaigns are never touched.
  Campaigns recorded in the batch ledger form (README) are listed as skipped: their ledger is
  one row per batch and one per failed or skipped item already.

  For each such campaign, in this order:
    1. writes its completion report (one JSON line per item: outcome, reason, KEKs, failures and
       skips included) to <archive>/<campaign id>.completion.jsonl, never over an existing one;
    2. reads the archive back (size; S3: size and ETag) and stops if it differs;
    3. saves the campaign summary: outcomes and the exposure report's totals;
    4. deletes, in statements of at most --step-rows rows (default ${DEFAULT_PRUNE_STEP_ROWS}): its rewrapped and
       skipped item rows, its batch rows, its per-second progress rows, and noncurrent versions
       the sweep deleted.
  Kept: the campaign, its counters and failure-reason counts, the summary (rewrap campaign
  status shows it); failed items and items that never reached an outcome, the newest rewrapped
  item per store and a sample of 100 rewrapped items (so kek retire is exactly as strict as
  before: what failed still blocks its KEK); the KEK inventory of every store; noncurrent
  versions still exposed, locked or kept.
  Also deleted: the shared-dedupe rows (rewrapped DEK cache) of every completed or cancelled
  campaign, whatever its age.

  --archive is required (or --no-archive, which drops the per-item detail without a copy).
  --dry-run changes nothing and prints what would be deleted and kept.
  Running it again is harmless: a campaign pruned before is not archived again; what is left
  of an interrupted prune is deleted.

Exit codes: 0 ok, 1 failed (nothing of the failing campaign was deleted before its archive was verified), 2 bad usage.`,
  options: { 'older-than': { type: 'string' }, archive: { type: 'string' }, 'no-archive': { type: 'boolean' }, 'dry-run': { type: 'boolean' }, 'step-rows': { type: 'string' } },
  async run({ values }) {
    const olderThan = values['older-than'] as string | undefined;
    if (olderThan === undefined) throw new UsageError('ledger prune: --older-than is required, e.g. --older-than 90d');
    const ageMs = parseDuration(olderThan, '--older-than');
    const archive = values.archive as string | undefined;
    if (archive === undefined && !values['no-archive']) {
      throw new UsageError('ledger prune: give --archive file:///dir or --archive s3://bucket/prefix (or --no-archive to delete the per-item detail without a copy)');
    }
    if (archive !== undefined && values['no-archive']) throw new UsageError('ledger prune: --archive and --no-archive exclude each other');
    const stepRows = Number((values['step-rows'] as string | undefined) ?? DEFAULT_PRUNE_STEP_ROWS);
    if (!Number.isInteger(stepRows) || stepRows < 1 || stepRows > 1_000_000) throw new UsageError('ledger prune: --step-rows must be an integer from 1 to 1000000');
    const r = await withLedger((res) => pruneLedger(res, { cutoff: new Date(Date.now() - ageMs), archive, dryRun: Boolean(values['dry-run']), stepRows }));
    out(Boolean(values.json), r, () => renderPrune(r));
    return EXIT.ok;
  },
};

function renderPrune(r: PruneResult): string {
  const verb = r.dryRun ? 'would delete' : 'deleted';
  const lines = [`${r.dryRun ? 'dry run: ' : ''}${r.campaigns.length} campaign(s) finished before ${r.cutoff}`];
  for (const c of r.campaigns) {
    const d = c.deleted;
    lines.push(`  ${c.id} "${c.name}" (${c.state} ${c.finishedAt})${c.prunedBefore ? ', pruned before' : ''}`);
    lines.push(`    ${verb} ${d.items} item row(s), ${d.batches} batch row(s), ${d.progress} progress row(s), ${d.noncurrentVersions} deleted-version row(s)`);
    lines.push(`    kept ${c.kept.failed} failed, ${c.kept.pending} without outcome, ${c.kept.movedSample} rewrapped (retirement sample)`);
    if (c.archive) lines.push(`    archive ${c.archive.location}${r.dryRun ? ' (to be written)' : ` (${c.archive.bytes} bytes${c.archive.etag ? `, ETag ${c.archive.etag}` : ''})`}`);
    else lines.push('    no archive');
  }
  for (const c of r.skipped) lines.push(`  skipped ${c.id} "${c.name}" (${c.state} ${c.finishedAt}): batch ledger form, its ledger is one row per batch already`);
  lines.push(`  shared-dedupe rows of finished campaigns: ${verb} ${r.dekRewraps}`);
  return lines.join('\n');
}

export const ledgerCommands: Command[] = [prune];
