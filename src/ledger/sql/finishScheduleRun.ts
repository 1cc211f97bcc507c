import type { Queryable } from '../types.ts';
import type { ScheduleRunOutcome } from '../schedule-types.ts';

/** Ends a run: its outcome, the campaign it started, and (KMS new-key rotation) the schedule's next KEK id. */
export async function finishScheduleRun(
  db: Queryable,
  run: { runId: number; scheduleName: string; finishedAt: Date },
  result: { outcome: ScheduleRunOutcome; campaignId?: string; detail?: string; nextKekId?: string },
): Promise<void> {
  await db.query(
    `WITH r AS (
       UPDATE rewrap_schedule_runs SET finished_at = $2, outcome = $3, campaign_id = $4, detail = CASE WHEN $5 = '' THEN detail ELSE coalesce(detail || '; ', '') || $5 END
        WHERE id = $1 RETURNING schedule_name)
     UPDATE rewrap_schedules s SET run_claimed_at = NULL, kek_id = coalesce($6, s.kek_id) FROM r WHERE s.name = r.schedule_name`,
    [run.runId, run.finishedAt, result.outcome, result.campaignId ?? null, result.detail ?? '', result.nextKekId ?? null],
  );
}
