/** Maps a rewrap_schedules row (with its latest run) to a Schedule. */
import type { Schedule, ScheduleRunOutcome } from './schedule-types.ts';

export const SCHEDULE_COLUMNS = `s.name, s.cron, s.timezone, s.template, s.kek_id, s.kms_rotation, s.windows, s.next_run_at,
  s.last_run_at, s.run_claimed_at, s.created_at,
  (SELECT row_to_json(r) FROM (SELECT outcome, campaign_id, ran_at, detail FROM rewrap_schedule_runs
     WHERE schedule_name = s.name ORDER BY id DESC LIMIT 1) r) AS last_run`;

export function toSchedule(r: Record<string, any>): Schedule {
  const last = r.last_run as { outcome: string | null; campaign_id: string | null; ran_at: string; detail: string | null } | null;
  return {
    name: r.name,
    cron: r.cron,
    timezone: r.timezone,
    template: r.template,
    kekId: r.kek_id,
    kmsRotation: r.kms_rotation,
    windows: r.windows,
    nextRunAt: r.next_run_at,
    lastRunAt: r.last_run_at,
    runClaimedAt: r.run_claimed_at,
    createdAt: r.created_at,
    lastRun: last ? { outcome: last.outcome as ScheduleRunOutcome | null, campaignId: last.campaign_id, ranAt: new Date(last.ran_at), detail: last.detail } : null,
  };
}
