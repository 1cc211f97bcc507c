/** Records the canary's verdict and its report (item keys, reason codes; never key bytes). */
import { jsonParam } from '../campaign-row.ts';
import type { Queryable } from '../types.ts';

export async function recordCanary(db: Queryable, campaignId: string, state: 'passed' | 'failed', report: unknown): Promise<void> {
  await db.query(`UPDATE rewrap_campaigns SET canary_state = $2, canary_report = $3::jsonb, updated_at = now() WHERE id = $1`, [
    campaignId,
    state,
    jsonParam(report),
  ]);
}
