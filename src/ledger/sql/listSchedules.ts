import type { Queryable } from '../types.ts';
import type { Schedule } from '../schedule-types.ts';
import { SCHEDULE_COLUMNS, toSchedule } from '../schedule-row.ts';

/** Every schedule (or the one named), by name, with its latest run. */
export async function listSchedules(db: Queryable, name?: string): Promise<Schedule[]> {
  const { rows } = await db.query(
    `SELECT ${SCHEDULE_COLUMNS} FROM rewrap_schedules s WHERE $1::text IS NULL OR s.name = $1 ORDER BY s.name`,
    [name ?? null],
  );
  return rows.map(toSchedule);
}
