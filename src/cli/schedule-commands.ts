/** `rewrap schedule create|list|delete`: rotation schedules in the ledger (the active scheduler runs them). */
import { readFile } from 'node:fs/promises';
import { ConfigError } from '../core/errors.ts';
import { parseJsonText } from '../json-text.ts';
import { createSchedule, deleteSchedule, listScheduleRuns, listSchedules } from '../ledger/index.ts';
import { parseScheduleSpec } from '../schedule/schedule-spec.ts';
import type { Schedule } from '../ledger/schedule-types.ts';
import { withLedger } from './with-ledger.ts';
import { EXIT, UsageError, out, type Command } from './args.ts';

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`schedule spec file ${path} cannot be read`, { cause: err });
  }
  return parseJsonText(text, `schedule spec file ${path}`);
}

function describe(s: Schedule): string {
  const windows = s.windows.map((w) => `${w.days.join(',')} ${w.from}-${w.to} ${w.tz}`).join('; ');
  const last = s.lastRun ? `${s.lastRun.outcome ?? 'running'}${s.lastRun.campaignId ? ` (campaign ${s.lastRun.campaignId})` : ''} at ${s.lastRun.ranAt.toISOString()}` : 'never ran';
  return `${s.name}  "${s.cron}" ${s.timezone}  kek ${s.kekId} (${s.template.provider.type})${windows ? `  windows ${windows}` : ''}\n    next ${s.nextRunAt.toISOString()}  last: ${last}`;
}

const create: Command = {
  name: 'schedule create',
  summary: 'Create a rotation schedule: on a cron, make a new KEK version and a campaign that drains the old one.',
  usage: `rewrap schedule create --spec <schedule.json> [--json]

  --spec <file>   { "name", "cron", "timezone"?, "kek", "kmsRotation"?: "rotate-on-demand"|"new-key",
                    "windows"?: [{ "days": ["mon",...], "from": "18:00", "to": "08:00", "tz": "Europe/Berlin" }],
                    "campaign": { "kind"?, "sources", "provider", "options"? } }
                  A run creates no key version and no campaign when nothing is under the current version.
                  Runs missed while no scheduler was active run once, at the next start.

Exit codes: 0 created, 2 bad spec (or a schedule of that name exists).`,
  options: { spec: { type: 'string' } },
  async run({ values }) {
    if (typeof values.spec !== 'string') throw new UsageError('schedule create: --spec <schedule.json> is required');
    const spec = parseScheduleSpec(await readJson(values.spec), new Date());
    return withLedger(async (res) => {
      const s = await createSchedule(res.ledger, spec);
      out(Boolean(values.json), { name: s.name, nextRunAt: s.nextRunAt }, () => `created schedule ${s.name}; first run ${s.nextRunAt.toISOString()}`);
      return EXIT.ok;
    });
  },
};

const list: Command = {
  name: 'schedule list',
  summary: 'List rotation schedules with their next run and last outcome (--runs <name>: a schedule\'s run history).',
  usage: 'rewrap schedule list [--runs <name>] [--json]\n\nExit codes: 0 ok, 4 no such schedule (--runs).',
  options: { runs: { type: 'string' } },
  async run({ values }) {
    return withLedger(async (res) => {
      if (typeof values.runs === 'string') {
        if ((await listSchedules(res.ledger, values.runs)).length === 0) {
          process.stderr.write(`no schedule ${values.runs}\n`);
          return EXIT.notFound;
        }
        const runs = await listScheduleRuns(res.ledger, values.runs);
        out(Boolean(values.json), runs, () =>
          runs.length === 0
            ? 'no runs yet'
            : runs.map((r) => `${r.ranAt.toISOString()}  ${(r.outcome ?? 'running').padEnd(16)} ${r.fromKek ?? ''}${r.toKek ? ` -> ${r.toKek}` : ''}${r.campaignId ? `  campaign ${r.campaignId}` : ''}${r.detail ? `  ${r.detail}` : ''}`).join('\n'),
        );
        return EXIT.ok;
      }
      const all = await listSchedules(res.ledger);
      out(Boolean(values.json), all, () => (all.length === 0 ? 'no schedules' : all.map(describe).join('\n')));
      return EXIT.ok;
    });
  },
};

const remove: Command = {
  name: 'schedule delete',
  summary: 'Delete a rotation schedule (campaigns it started are kept).',
  usage: 'rewrap schedule delete <name> [--json]\n\nExit codes: 0 deleted, 4 no such schedule.',
  async run({ values, positionals }) {
    const name = positionals[0];
    if (!name) throw new UsageError('schedule delete: expected a schedule name (see: rewrap schedule list)');
    return withLedger(async (res) => {
      const ok = await deleteSchedule(res.ledger, name);
      out(Boolean(values.json), { name, deleted: ok }, () => (ok ? `deleted schedule ${name}` : `no schedule ${name}`));
      return ok ? EXIT.ok : EXIT.notFound;
    });
  },
};

export const scheduleCommands: Command[] = [create, list, remove];
