/** Saves the enumeration cursor when a page brought no items (empty listing page, filtered delta). */
import { jsonParam } from '../campaign-row.ts';
import type { Queryable } from '../types.ts';

export async function savePlanCursor(db: Queryable, campaignId: string, cursor: unknown, planDone: boolean): Promise<void> {
  await db.query(
    `UPDATE rewrap_campaigns
        SET plan_cursor = $2::jsonb, plan_done = $3, plan_started_at = coalesce(plan_started_at, now()), updated_at = now()
      WHERE id = $1 AND state IN ('planning', 'running', 'paused')`,
    [campaignId, jsonParam(cursor), planDone],
  );
}
