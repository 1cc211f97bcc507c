/**
 * Burn-down history of a campaign, from the ledger's per-second progress rows (rewrap_progress,
 * kept for an hour by commitBatch). Nothing is kept in the API process, so every replica, and a
 * restarted one, draws the same curve.
 *
 * remaining(t) = remaining now + items that reached an outcome after t, less what batch-form
 * ranges done after t changed `planned` by (campaignProgressPerSecond). While the campaign is
 * still planning the curve is relative to what is planned so far.
 */
import type { Queryable } from '../ledger/types.ts';
import { campaignProgressPerSecond } from '../ledger/sql/campaignProgressPerSecond.ts';

export interface HistoryPoint {
  /** Unix seconds. */
  t: number;
  remaining: number;
}

export const HISTORY_WINDOW_SECONDS = 3600;

/** `remainingNow` comes from campaignProgress read just before; the last point is "now". */
export async function progressHistory(db: Queryable, campaignId: string, remainingNow: number): Promise<HistoryPoint[]> {
  const { now: ledgerNow, seconds } = await campaignProgressPerSecond(db, campaignId, HISTORY_WINDOW_SECONDS);
  const now = ledgerNow ?? Date.now() / 1000;
  const lastRow = seconds.length ? seconds[seconds.length - 1]!.t : -Infinity;
  const points: HistoryPoint[] = [];
  // Walk backwards from now: before second t's commits, `after` more items remained.
  let after = remainingNow;
  points.push({ t: Math.max(Math.floor(now), lastRow + 1), remaining: after });
  for (let i = seconds.length - 1; i >= 0; i--) {
    const { t, items, plannedCorrection } = seconds[i]!;
    // The row counts commits during [t, t+1): at t+1 the backlog was `after`, at t it was more.
    if (t + 1 < points[points.length - 1]!.t) points.push({ t: t + 1, remaining: after });
    // Never less (a batch committed in parts may put its correction after its items): the curve only burns down.
    after += Math.max(items - plannedCorrection, 0);
    points.push({ t, remaining: after });
  }
  return points.reverse();
}
