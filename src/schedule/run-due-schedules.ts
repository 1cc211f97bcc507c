/**
 * Runs the rotation schedules that are due: called by the active scheduler on every tick with the
 * clock's `now` (tests pass their own clock). For each due schedule, inside its time windows:
 *   1. refuse if a campaign that may still write covers the same stores (no overlap, no new key);
 *   2. find the current KEK version and whether anything in the sources is under it: if nothing
 *      is, record "nothing-to-move" and create neither a key version nor an empty campaign;
 *   3. create the next KEK version (recorded in the run before anything else can fail, so a crash
 *      resumes with it instead of making another), then admit and start a campaign from the
 *      current version to the new one.
 * Missed runs (the scheduler was down over several due times) run once: see claimDueSchedules.
 */
import { admitCampaign, campaignScopes } from '../campaign/create.ts';
import { parseCampaignSpec } from '../campaign/spec.ts';
import type { CampaignSpec } from '../core/campaign-spec.ts';
import { formatKek, type KekSelector } from '../core/kek-ref.ts';
import type { Logger } from '../log.ts';
import type { Resources } from '../runtime/resources.ts';
import { ACTIVE_STATES } from '../ledger/types.ts';
import { claimDueSchedules, finishScheduleRun, listCampaigns, noteScheduleRunKeks, scopesOverlap, setCampaignState } from '../ledger/index.ts';
import { findItemsUnderKek } from './items-under-kek.ts';
import { nextCronRun } from './schedule-spec.ts';
import { inAnyWindow } from './time-windows.ts';
import type { ClaimedScheduleRun, ScheduleRunOutcome } from '../ledger/schedule-types.ts';

/** A run that stopped (crash) is taken over once its claim is this old. */
export const SCHEDULE_RUN_LEASE_MS = 15 * 60_000;
const NEVER = new Date('9999-12-31T00:00:00Z');

export interface ScheduleRunResult {
  schedule: string;
  runId: number;
  outcome: ScheduleRunOutcome;
  campaignId?: string;
  from?: string;
  to?: string;
  detail?: string;
}

export async function runDueSchedules(res: Resources, log: Logger, now: Date = new Date()): Promise<ScheduleRunResult[]> {
  const claimed = await claimDueSchedules(res.ledger, now, SCHEDULE_RUN_LEASE_MS, (s) =>
    inAnyWindow(s.windows, now) ? (nextCronRun(s.cron, s.timezone, now) ?? NEVER) : null,
  );
  const results: ScheduleRunResult[] = [];
  for (const run of claimed) {
    const slog = log.child({ schedule: run.schedule.name, scheduleRunId: run.runId });
    let r: ScheduleRunResult;
    let threw = false;
    try {
      r = await runOne(res, run, now);
    } catch (err) {
      threw = true;
      slog.error({ err }, 'scheduled rotation failed; it runs again at its next due time');
      r = { schedule: run.schedule.name, runId: run.runId, outcome: 'failed', detail: err instanceof Error ? err.message : String(err) };
      await finishScheduleRun(res.ledger, { runId: run.runId, scheduleName: run.schedule.name, finishedAt: now }, { outcome: 'failed', detail: r.detail });
    }
    if (r.outcome === 'campaign-started') slog.info({ campaignId: r.campaignId, from: r.from, to: r.to }, 'scheduled rotation started a campaign');
    else if (r.outcome !== 'failed') slog.info({ outcome: r.outcome, detail: r.detail }, 'scheduled rotation: no campaign');
    else if (!threw) slog.error({ detail: r.detail }, 'scheduled rotation refused; it runs again at its next due time');
    results.push(r);
  }
  return results;
}

function parseKek(text: string): KekSelector {
  const i = text.lastIndexOf('@');
  return i > 0 ? { id: text.slice(0, i), version: text.slice(i + 1) } : { id: text };
}

async function runOne(res: Resources, run: ClaimedScheduleRun, now: Date): Promise<ScheduleRunResult> {
  const s = run.schedule;
  const base = { schedule: s.name, runId: run.runId };
  const finish = async (outcome: ScheduleRunOutcome, extra: { campaignId?: string; detail?: string; nextKekId?: string } = {}) => {
    await finishScheduleRun(res.ledger, { runId: run.runId, scheduleName: s.name, finishedAt: now }, { outcome, ...extra });
  };
  const name = `${s.name} ${run.dueAt.toISOString()}`;
  const specFor = (from: KekSelector, to: KekSelector): CampaignSpec => parseCampaignSpec({ ...s.template, name, from, to });
  /* Stands in for the real spec where only the sources and the provider matter (scopes, KMS client). */
  const probe = specFor({ id: s.kekId, version: 'current' }, { id: s.kekId });

  const scopes = await campaignScopes(probe);
  const active = (await listCampaigns(res.ledger, { states: [...ACTIVE_STATES] })).find((c) => c.scopes.some((a) => scopes.some((b) => scopesOverlap(a, b))));
  if (active) {
    const detail = `campaign ${active.id} (${active.name}, ${active.state}) still covers these stores; this run is skipped`;
    await finish('campaign-active', { detail });
    return { ...base, outcome: 'campaign-active', detail };
  }

  let from: KekSelector;
  let to: KekSelector;
  let nextKekId = s.kekId;
  if (run.resume) {
    from = parseKek(run.resume.fromKek);
    to = parseKek(run.resume.toKek);
    nextKekId = to.id;
  } else {
    /* The KEK side, through the admin port: which version is current, and making the next one. */
    const admin = res.kekAdmin(probe);
    const lifecycle = { rotation: s.kmsRotation === 'new-key' ? 'new-key' : 'new-version', requester: `schedule ${s.name}` } as const;
    from = await admin.currentVersion(s.kekId, lifecycle);
    const found = await findItemsUnderKek(res, { ...probe, from });
    if (!found) {
      const detail = `nothing in the sources is under ${formatKek(from)}: no key version and no campaign created`;
      await finish('nothing-to-move', { detail });
      return { ...base, outcome: 'nothing-to-move', from: formatKek(from), detail };
    }
    const next = await admin.createNextVersion(s.kekId, from, lifecycle);
    to = next.to;
    nextKekId = next.nextKekId;
    await noteScheduleRunKeks(res.ledger, run.runId, formatKek(from), formatKek(to));
  }
  const campaign = await admitCampaign(res.ledger, specFor(from, to), 0, res.config.ledgerForm);
  await setCampaignState(res.ledger, campaign.id, ['planning'], 'running');
  await finish('campaign-started', { campaignId: campaign.id, nextKekId });
  return { ...base, outcome: 'campaign-started', campaignId: campaign.id, from: formatKek(from), to: formatKek(to) };
}
