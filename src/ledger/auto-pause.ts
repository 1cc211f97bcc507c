/**
 * Auto-pause: when a commit makes the failed count cross the campaign's threshold, the campaign is
 * paused (running -> paused) with a reason naming the threshold and the top failure reasons.
 * "Cross" means: over the threshold after this commit, not over it before. So a campaign an
 * operator resumed after an auto-pause is not paused again by the very next failure.
 * Thresholds (spec.options, see src/core/campaign-spec.ts): maxFailures (0 = never): pause when failed
 * reaches it; maxFailureRatio (0 = never): pause when failed / done exceeds it, once at least
 * minItemsForRatio items are done.
 */
import type pg from 'pg';
import type { Counters } from './types.ts';

export interface AutoPauseOptions {
  maxFailures: number;
  maxFailureRatio: number;
  minItemsForRatio: number;
}

export function autoPauseOptions(spec: unknown): AutoPauseOptions {
  const o = ((spec as { options?: Record<string, unknown> } | null)?.options ?? {}) as Record<string, unknown>;
  const num = (v: unknown, dflt: number) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : dflt);
  return { maxFailures: num(o.maxFailures, 0), maxFailureRatio: num(o.maxFailureRatio, 0), minItemsForRatio: num(o.minItemsForRatio, 100) };
}

/** Which threshold `c` is over, as text for pause_reason; undefined when none. */
export function thresholdExceeded(c: Counters, o: AutoPauseOptions): string | undefined {
  if (o.maxFailures > 0 && c.failed >= o.maxFailures) return `${c.failed} failed items reached maxFailures ${o.maxFailures}`;
  const done = c.rewrapped + c.skipped + c.failed;
  if (o.maxFailureRatio > 0 && done >= o.minItemsForRatio && done > 0 && c.failed / done > o.maxFailureRatio) {
    return `failure ratio ${(c.failed / done).toFixed(4)} (${c.failed} of ${done} done) exceeds maxFailureRatio ${o.maxFailureRatio}`;
  }
  return undefined;
}

/**
 * Runs inside commitBatch's transaction, after the counters moved from `before` to `after`, with
 * the thresholds of a campaign that was running. Queries only when a threshold was just crossed.
 */
export async function applyAutoPause(client: pg.PoolClient, campaignId: string, options: AutoPauseOptions, before: Counters, after: Counters): Promise<boolean> {
  const now = thresholdExceeded(after, options);
  if (now === undefined || thresholdExceeded(before, options) !== undefined) return false;
  const { rows: top } = await client.query<{ reason: string; items: string }>(
    `SELECT reason, items FROM rewrap_campaign_failure_reasons WHERE campaign_id = $1 AND items > 0
      ORDER BY items DESC, reason LIMIT 3`,
    [campaignId],
  );
  const reason = `auto-paused: ${now}; top reasons: ${top.map((r) => `${r.reason} ${r.items}`).join(', ')}`;
  const { rowCount } = await client.query(
    `UPDATE rewrap_campaigns SET state = 'paused', pause_reason = $2, updated_at = now() WHERE id = $1 AND state = 'running'`,
    [campaignId, reason],
  );
  return rowCount === 1;
}
