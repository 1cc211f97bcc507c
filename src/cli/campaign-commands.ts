/** `rewrap campaign ...`: talks to the ledger directly. */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { loadConfig } from '../config.ts';
import { Resources } from '../runtime/resources.ts';
import {
  CampaignConflictError,
  campaignFailures,
  campaignProgress,
  failureCountsByReason,
  getCampaign,
  listCampaigns,
  migrate,
  setCampaignState,
} from '../ledger/index.ts';
import type { CampaignState } from '../ledger/types.ts';
import { admitCampaign, loadSpecFile } from '../campaign/create.ts';
import { dryRun } from '../campaign/dry-run.ts';
import { EXIT, UsageError, out, requireId, type Command } from './args.ts';
import { renderStatus, watchStatus } from './status-view.ts';

async function withLedger<T>(fn: (res: Resources) => Promise<T>): Promise<T> {
  const res = new Resources(loadConfig());
  try {
    await migrate(res.ledger);
    return await fn(res);
  } finally {
    await res.close();
  }
}

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
    const spec = await loadSpecFile(values.spec);
    return withLedger(async (res) => {
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
      try {
        const c = await admitCampaign(res.ledger, spec);
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
      out(Boolean(values.json), { id, name: c.name, kind: c.kind, ...p, failuresByReason: reasons }, () => renderStatus(c, p, reasons));
      return EXIT.ok;
    });
  },
};

const report: Command = {
  name: 'campaign report',
  summary: 'Write every failed item with its reason code (JSONL or CSV) to a file or stdout.',
  usage: 'rewrap campaign report <id> [--out <file>] [--format jsonl|csv]\n\nExit codes: 0 ok, 4 no such campaign.',
  options: { out: { type: 'string' }, format: { type: 'string' } },
  async run({ values, positionals }) {
    const id = requireId(positionals, 'campaign report');
    const format = (values.format as string | undefined) ?? 'jsonl';
    if (format !== 'jsonl' && format !== 'csv') throw new UsageError('campaign report: --format must be jsonl or csv');
    return withLedger(async (res) => {
      if (!(await getCampaign(res.ledger, id))) {
        process.stderr.write(`no campaign ${id}\n`);
        return EXIT.notFound;
      }
      const sink = typeof values.out === 'string' ? createWriteStream(values.out) : process.stdout;
      if (format === 'csv') sink.write('store,item,reason,detail,from_kek,at\n');
      let afterKey: { storeId: string; itemKey: string } | undefined;
      for (;;) {
        const page = await campaignFailures(res.ledger, id, { limit: 1000, after: afterKey });
        for (const f of page) {
          const line =
            format === 'csv'
              ? [f.storeId, f.itemKey, f.reason ?? '', f.detail ?? '', f.from ? `${f.from.id}${f.from.version ? '@' + f.from.version : ''}` : '', f.doneAt?.toISOString() ?? ''].map(csv).join(',')
              : JSON.stringify({ store: f.storeId, item: f.itemKey, outcome: 'failed', reason: f.reason, detail: f.detail, from: f.from, at: f.doneAt });
          if (!sink.write(line + '\n')) await once(sink, 'drain');
        }
        if (page.length < 1000) break;
        afterKey = { storeId: page[page.length - 1]!.storeId, itemKey: page[page.length - 1]!.itemKey };
      }
      if (sink !== process.stdout) {
        sink.end();
        await once(sink, 'finish');
      }
      return EXIT.ok;
    });
  },
};

function csv(v: string): string {
  return /[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
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
