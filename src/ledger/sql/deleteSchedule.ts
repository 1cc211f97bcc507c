import type { Queryable } from '../types.ts';

/** Deletes a schedule and its run history; campaigns it started are kept. False when none exists. */
export async function deleteSchedule(db: Queryable, name: string): Promise<boolean> {
  const r = await db.query('DELETE FROM rewrap_schedules WHERE name = $1', [name]);
  return (r.rowCount ?? 0) > 0;
}
