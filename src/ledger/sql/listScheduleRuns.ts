import type { Queryable } from '../types.ts';
import type { ScheduleRun } from '../schedule-types.ts';

/** A schedule's runs, newest first. */
export async function listScheduleRuns(db: Queryable, scheduleName: string, limit = 100): Promise<ScheduleRun[]> {
  const { rows } = await db.query(
    `SELECT id, schedule_name, due_at, ran_at, finished_at, outcome, from_kek, to_kek, campaign_id, detail
       FROM rewrap_schedule_runs WHERE schedule_name = $1 ORDER BY id DESC LIMIT $2`,
    [scheduleName, limit],
  );
  return rows.map((r) => ({
    id: Number(r.id),
    scheduleName: r.schedule_name,
    dueAt: r.due_at,
    ranAt: r.ran_at,
    finishedAt: r.finished_at,
    outcome: r.outcome,
    fromKek: r.from_kek,
    toKek: r.to_kek,
    campaignId: r.campaign_id,
    detail: r.detail,
  }));
}
