/**
 * Claims the schedules due at `now`, in one short transaction (rows locked FOR UPDATE SKIP LOCKED,
 * so two callers never claim the same run). `nextRun` decides per schedule: the next due time
 * after `now` (claim it), or null (not now: outside its time windows; it stays due).
 * Postcondition: a schedule that was down over several due times is claimed ONCE, and its
 * next_run_at moves past `now` (missed runs are not replayed one by one).
 * A run left unfinished by a crash (claim older than `leaseMs`) is taken over: when it had already
 * created the new KEK version, the new run resumes with it instead of creating another one.
 */
import type pg from 'pg';
import { withTransaction } from '../transaction.ts';
import type { ClaimedScheduleRun, Schedule } from '../schedule-types.ts';
import { SCHEDULE_COLUMNS, toSchedule } from '../schedule-row.ts';

export async function claimDueSchedules(
  pool: pg.Pool,
  now: Date,
  leaseMs: number,
  nextRun: (s: Schedule) => Date | null,
): Promise<ClaimedScheduleRun[]> {
  return withTransaction(pool, async (client) => {
    const { rows } = await client.query(
      `SELECT ${SCHEDULE_COLUMNS} FROM rewrap_schedules s
        WHERE s.next_run_at <= $1 AND (s.run_claimed_at IS NULL OR s.run_claimed_at < $1::timestamptz - make_interval(secs => $2::float8 / 1000))
        ORDER BY s.next_run_at, s.name FOR UPDATE SKIP LOCKED`,
      [now, leaseMs],
    );
    const claimed: ClaimedScheduleRun[] = [];
    for (const row of rows) {
      const schedule = toSchedule(row);
      const next = nextRun(schedule);
      if (next === null) continue;
      const { rows: stale } = await client.query<{ id: string; from_kek: string | null; to_kek: string | null }>(
        `UPDATE rewrap_schedule_runs SET finished_at = $2, outcome = 'failed',
                detail = coalesce(detail || '; ', '') || 'abandoned: the process running it stopped before it finished'
          WHERE schedule_name = $1 AND finished_at IS NULL RETURNING id, from_kek, to_kek`,
        [schedule.name, now],
      );
      const resume = stale.find((r) => r.to_kek !== null && r.from_kek !== null);
      const { rows: run } = await client.query<{ id: string }>(
        `INSERT INTO rewrap_schedule_runs (schedule_name, due_at, ran_at, from_kek, to_kek, detail)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
        [schedule.name, schedule.nextRunAt, now, resume?.from_kek ?? null, resume?.to_kek ?? null, resume ? `resumes run ${resume.id}` : null],
      );
      await client.query('UPDATE rewrap_schedules SET next_run_at = $2, last_run_at = $3, run_claimed_at = $3 WHERE name = $1', [schedule.name, next, now]);
      claimed.push({
        schedule,
        runId: Number(run[0]!.id),
        dueAt: schedule.nextRunAt,
        resume: resume ? { fromKek: resume.from_kek!, toKek: resume.to_kek! } : undefined,
      });
    }
    return claimed;
  });
}
