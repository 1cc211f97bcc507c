/** `rewrap campaign ...`: talks to the ledger directly. */
import { suspendedBuckets, suspendedWarning } from '../campaign/suspended-buckets.ts';
import {
  CampaignConflictError,
  campaignProgress,
  campaignSummary,
  failureCountsByReason,
  getCampaign,
  noncurrentCounts,
  listCampaigns,
  setCampaignState,
} from '../ledger/index.ts';
import type { CampaignState } from '../ledger/types.ts';
import { admitCampaign, loadSpecFile } from '../campaign/create.ts';
import { resolveKeyMap } from '../campaign/key-map-rule.ts';
import { dryRun } from '../campaign/dry-run.ts';
import { checkInventorySources } from '../sources/s3-inventory-source.ts';
import { withLedger } from './with-ledger.ts';
import { EXIT, UsageError, out, requireId, type Command } from './args.ts';
import { renderStatus, watchStatus } from './status-view.ts';
import { describeKeks, keyMapCounts } from '../metrics/key-map-counts.ts';
import { noncurrentStatus } from '../campaign/noncurrent-sweep.ts';
import { parseReportOptions, writeCampaignReport, type ReportResult } from '../reports/campaign-report.ts';

const create: Command = {
  name: 'campaign create',
  summary: 'Create a rotation campaign from a JSON spec (sources, provider, from/to KEK, options).',
  usage: `rewrap campaign create --spec <file.json> [--start] [--dry-run] [--json]

  --spec <file>   campaign spec; see README "Campaign spec"
  --start         start it right away (otherwise: rewrap campaign start <id>)
  --dry-run       only count items, KMS calls and the time at the budget; create nothing

Exit codes: 0 created, 2 bad spec or flags, 3 refused (overlaps a campaign that may still write).`,
  options: { spec: { type: 'string' }, start: { type: 'boolean' }, 'dry-run': { type: 'boolean' } },
  async run({ values }) {
    if (typeof values.spec !== 'string') throw new UsageError('campaign create: --spec <file.json> is required');
    /* A key map rule is resolved now, so that the dry run counts what the stored spec will drain. */
    const spec = resolveKeyMap(await loadSpecFile(values.spec));
    return withLedger(async (res) => {
      const suspended = await suspendedBuckets(res, spec);
      if (suspended.length > 0) process.stderr.write(suspendedWarning(suspended));
      if (values['dry-run']) {
        const r = await dryRun(res, spec);
        out(Boolean(values.json), r, () =>
          [
            `items: ${r.items} (${Object.entries(r.byStore).map(([s, n]) => `${s}: ${n}`).join(', ')})`,
            `KMS calls: at most ${r.kmsCallsAtMost}`,
            `duration at the budget: ${r.estimatedSeconds === null ? 'no budget set (kmsRequestsPerSecond)' : `${r.estimatedSeconds} s`}`,
          ].join('\n'),
        );
        return EXIT.ok;
      }
      await checkInventorySources(res.s3Client(), spec);
      if (spec.options.noncurrentVersions === 'keep') {
        /* Said loudly: the consequence is irreversible once the KEK retires. */
        process.stderr.write(
          `warning: "noncurrentVersions": "keep": noncurrent versions under ${describeKeks(spec).from} in versioned buckets are counted but will NOT block kek retire; ` +
            'once it is disabled or deleted those versions can no longer be decrypted (recorded on the campaign)\n',
        );
      }
      try {
        const c = await admitCampaign(res.ledger, spec, 0, res.config.ledgerForm);
        if (values.start) await setCampaignState(res.ledger, c.id, ['planning'], 'running');
        out(Boolean(values.json), { id: c.id, state: values.start ? 'running' : c.state }, () => `created campaign ${c.id}${values.start ? ' (running)' : '; start it with: rewrap campaign start ' + c.id}`);
        return EXIT.ok;
      } catch (err) {
        if (err instanceof CampaignConflictError) {
          process.stderr.write(`refused: ${err.message}\n`);
          return EXIT.refused;
        }
        throw err;
      }
    });
  },
};

function transition(name: string, summary: string, from: CampaignState[], to: CampaignState): Command {
  return {
    name: `campaign ${name}`,
    summary,
    usage: `rewrap campaign ${name} <id> [--json]\n\nExit codes: 0 done, 3 refused (the campaign is in another state), 4 no such campaign.`,
    async run({ values, positionals }) {
      const id = requireId(positionals, `campaign ${name}`);
      return withLedger(async (res) => {
        const c = await getCampaign(res.ledger, id);
        if (!c) {
          process.stderr.write(`no campaign ${id}\n`);
          return EXIT.notFound;
        }
        const ok = await setCampaignState(res.ledger, id, from, to, name === 'pause' ? 'paused by operator' : undefined);
        out(Boolean(values.json), { id, ok, state: ok ? to : c.state }, () => (ok ? `campaign ${id}: ${c.state} -> ${to}` : `refused: campaign ${id} is ${c.state}; ${name} needs ${from.join(' or ')}`));
        return ok ? EXIT.ok : EXIT.refused;
      });
    },
  };
}

const list: Command = {
  name: 'campaign list',
  summary: 'List campaigns with their state and progress.',
  usage: 'rewrap campaign list [--json]',
  async run({ values }) {
    return withLedger(async (res) => {
      const cs = await listCampaigns(res.ledger);
      const rows = await Promise.all(cs.map(async (c) => ({ id: c.id, name: c.name, kind: c.kind, ...(await campaignProgress(res.ledger, c.id)) })));
      out(Boolean(values.json), rows, () =>
        rows.length === 0 ? 'no campaigns' : rows.map((r) => `${r.id}  ${r.state.padEnd(9)} ${r.kind.padEnd(8)} ${r.name}  remaining ${r.remaining} of ${r.planned}`).join('\n'),
      );
      return EXIT.ok;
    });
  },
};

const status: Command = {
  name: 'campaign status',
  summary: 'Show a campaign\'s progress: counts, rate, ETA, failures by reason. --watch redraws it live.',
  usage: 'rewrap campaign status <id> [--watch] [--interval-ms 1000] [--json]\n\nExit codes: 0 ok, 4 no such campaign.',
  options: { watch: { type: 'boolean' }, 'interval-ms': { type: 'string' } },
  async run({ values, positionals }) {
    const id = requireId(positionals, 'campaign status');
    return withLedger(async (res) => {
      const c = await getCampaign(res.ledger, id);
      if (!c) {
        process.stderr.write(`no campaign ${id}\n`);
        return EXIT.notFound;
      }
      if (values.watch) {
        await watchStatus(res.ledger, c, Number(values['interval-ms'] ?? 1000), Boolean(values.json));
        return EXIT.ok;
      }
      const p = await campaignProgress(res.ledger, id);
      const reasons = await failureCountsByReason(res.ledger, id);
      const noncurrent = await noncurrentCounts(res.ledger, id);
      const pruned = (await campaignSummary(res.ledger, id)) ?? null;
      const keks = c.spec.keyMap ? await keyMapCounts(res.ledger, id, c.spec) : undefined;
      out(
        Boolean(values.json),
        { id, name: c.name, kind: c.kind, ...p, failuresByReason: reasons, noncurrentVersions: noncurrentStatus(c, noncurrent), ...(keks ? { keyMap: keks } : {}), pruned },
        () => renderStatus(c, p, reasons, noncurrent, keks, pruned),
      );
      return EXIT.ok;
    });
  },
};

const report: Command = {
  name: 'campaign report',
  summary: 'Write a campaign report (JSONL or CSV) to stdout, a file or S3: failures (default), completion (every item), exposure (incidents).',
  usage: `rewrap campaign report <id> [--kind failures|completion|exposure|keks] [--format jsonl|csv] [--out <file>|s3://<bucket>/<key> [--force]] [--expand] [--json]

  --out        a new file or S3 object (never an existing one unless --force; a file is written
               beside it and renamed into place, never through a symlink); CSV cells starting
               with = + - @ get a leading ' so spreadsheets do not run them

  failures     every failed item with its reason code
  completion   every item: outcome, reason code, from/to KEK and KMS material id, KEK now, time;
               a batch-form campaign (the default for Postgres tables) has no row per item: a
               line per range (range_lo < id <= range_hi) with its counts, and one per failed or
               skipped item (README, "The batch ledger form"); with --expand also a "row" line
               per other row of each range, its KEK now read from the table (slow: every row is
               read; the ledger cannot say per row what the campaign did)
  exposure     every item that was under the campaign's (compromised) source KEK: moved when, or
               still exposed (batch form: per range, and per exception); noncurrent versions
               under it in versioned buckets of the scope (exposed-noncurrent, with version_id:
               exposed until deleted); totals and a timeline of items moved per minute go to
               stdout (with --out) or stderr (report on stdout)
  keks         one line per entry of the key map (one for from/to): from/to KEK, moved, remaining
               (read and left under the source), failed

Exit codes: 0 ok, 2 bad flags, 4 no such campaign.`,
  options: { out: { type: 'string' }, format: { type: 'string' }, kind: { type: 'string' }, force: { type: 'boolean' }, expand: { type: 'boolean' } },
  async run({ values, positionals }) {
    const id = requireId(positionals, 'campaign report');
    const o = parseReportOptions(values.kind, values.format);
    const outTo = values.out as string | undefined;
    return withLedger(async (res) => {
      const c = await getCampaign(res.ledger, id);
      if (!c) {
        process.stderr.write(`no campaign ${id}\n`);
        return EXIT.notFound;
      }
      const pruned = await campaignSummary(res.ledger, id);
      // After `rewrap ledger prune` only failed, unfinished and sampled items are left in the ledger.
      if (pruned) process.stderr.write(`campaign ${id}: per-item detail pruned at ${pruned.prunedAt.toISOString()}; the full completion report is ${pruned.archive ? `in ${pruned.archive.location}` : 'gone (pruned with --no-archive)'}\n`);
      const r = await writeCampaignReport(res, c, { ...o, out: outTo, force: values.force === true, expand: values.expand === true });
      if (r.kind === 'failures' && !values.json) return EXIT.ok;
      // The report itself may be on stdout: the summary then goes to stderr.
      const summary = values.json ? JSON.stringify(r, null, 2) : summaryText(r);
      (outTo === undefined || outTo === '-' ? process.stderr : process.stdout).write(summary + '\n');
      return EXIT.ok;
    });
  },
};

function summaryText(r: ReportResult): string {
  if (r.kind === 'failures') return `${r.items} failed item(s) -> ${r.location}`;
  if (r.kind === 'keks') {
    return `${r.entries} KEK(s), ${r.entriesWithItemsLeft} with items left; ${r.unattributed} item(s) not read yet (no KEK known); outside the map: remaining ${r.outsideMap.remaining}, failed ${r.outsideMap.failed} -> ${r.location}`;
  }
  if (r.kind === 'completion') return `${r.items} item(s) (${Object.entries(r.byOutcome).map(([k, n]) => `${k} ${n}`).join(', ')}) -> ${r.location}`;
  const t = r.totals;
  return [
    `exposure of ${r.compromisedKek} (campaign ${r.campaignId}, ${r.state}) -> ${r.location}`,
    `  under the KEK: ${t.underKek}  moved: ${t.moved}  moved (unconfirmed): ${t.movedUnconfirmed}  still exposed: ${t.exposed}  (never under it: ${t.neverUnderKek}, no envelope: ${t.noEnvelope})`,
    ...Object.entries(r.exposedByStore).map(([s, n]) => `  exposed in ${s}: ${n}`),
    `  noncurrent versions still under the KEK (exposed until deleted): ${t.noncurrentExposed}`,
    ...Object.entries(r.noncurrentExposedByStore).map(([s, n]) => `  noncurrent versions exposed in ${s}: ${n}`),
    ...r.noncurrentUnchecked.map((m) => `  NOT CHECKED: ${m}`),
    ...Object.entries(r.stillUnderKekByStore).map(([s, n]) => `  ledger: still under the KEK in ${s} (all campaigns): ${n}`),
    `  moved per minute: ${r.timeline.map((m) => `${m.minute.slice(11, 16)} ${m.moved}`).join(', ') || 'none'}`,
  ].join('\n');
}

export const campaignCommands: Command[] = [
  create,
  transition('start', 'Start a created campaign: the scheduler begins feeding its batches to workers.', ['planning'], 'running'),
  transition('pause', 'Pause a campaign: workers stop writing within seconds; nothing is lost.', ['running', 'planning'], 'paused'),
  transition('resume', 'Resume a paused campaign from where it stopped.', ['paused'], 'running'),
  transition('cancel', 'Cancel a campaign for good: its jobs leave Redis; its late workers write nothing.', ['planning', 'running', 'paused'], 'cancelled'),
  list,
  status,
  report,
];
