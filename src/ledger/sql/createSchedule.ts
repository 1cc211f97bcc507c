import type { Queryable } from '../types.ts';
import type { NewSchedule, Schedule } from '../schedule-types.ts';
import { SCHEDULE_COLUMNS, toSchedule } from '../schedule-row.ts';
import { ConfigError } from '../../core/errors.ts';

/** Stores a new schedule; a schedule of the same name is a ConfigError (delete it first). */
export async function createSchedule(db: Queryable, s: NewSchedule): Promise<Schedule> {
  try {
    const { rows } = await db.query(
      `INSERT INTO rewrap_schedules AS s (name, cron, timezone, template, kek_id, kms_rotation, windows, next_run_at, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ${SCHEDULE_COLUMNS}`,
      [s.name, s.cron, s.timezone, JSON.stringify(s.template), s.kekId, s.kmsRotation, JSON.stringify(s.windows), s.nextRunAt, s.createdAt],
    );
    return toSchedule(rows[0]);
  } catch (err) {
    if ((err as { code?: string }).code === '23505') throw new ConfigError(`schedule ${s.name} already exists; delete it first (rewrap schedule delete ${s.name})`, { cause: err });
    throw err;
  }
}
