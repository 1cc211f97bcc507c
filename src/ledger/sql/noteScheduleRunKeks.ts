import type { Queryable } from '../types.ts';

/** Records the KEK a run created, before it starts the campaign (so a crash can resume with it). */
export async function noteScheduleRunKeks(db: Queryable, runId: number, fromKek: string, toKek: string): Promise<void> {
  await db.query('UPDATE rewrap_schedule_runs SET from_kek = $2, to_kek = $3 WHERE id = $1', [runId, fromKek, toKek]);
}
