/**
 * Burn-down history of a campaign, from the ledger's per-second progress rows (rewrap_progress,
 * kept for an hour by commitBatch). Nothing is kept in the API process, so every replica, and a
 * restarted one, draws the same curve.
 *
 * remaining(t) = remaining now + items that reached an outcome after t. While the campaign is
 * still planning the curve is relative to what is planned so far.
 */
import type { Queryable } from '../ledger/types.ts';

export interface HistoryPoint {
  /** Unix seconds. */
  t: number;
  remaining: number;
}

export const HISTORY_WINDOW_SECONDS = 3600;

/**
 * `remainingNow` comes from campaignProgress read just before; the last point is "now". Read-only
 * query of a ledger table (a candidate for src/ledger/sql/ when the ledger owner wants it there).
 */
export async function progressHistory(db: Queryable, campaignId: string, remainingNow: number): Promise<HistoryPoint[]> {
  const { rows } = await db.query<{ t: string; items: string; now: string }>(
    `SELECT extract(epoch FROM at_second)::bigint AS t, items, extract(epoch FROM now())::float8 AS now
       FROM rewrap_progress
      WHERE campaign_id = $1 AND at_second > now() - $2::float8 * interval '1 second'
      ORDER BY at_second`,
    [campaignId, HISTORY_WINDOW_SECONDS],
  );
  const now = rows.length ? Number(rows[0]!.now) : Date.now() / 1000;
  const lastRow = rows.length ? Number(rows[rows.length - 1]!.t) : -Infinity;
  const points: HistoryPoint[] = [];
  // Walk backwards from now: before second t's items were done, `after` more items remained.
  let after = remainingNow;
  points.push({ t: Math.max(Math.floor(now), lastRow + 1), remaining: after });
  for (let i = rows.length - 1; i >= 0; i--) {
    const t = Number(rows[i]!.t);
    // The row counts items done during [t, t+1): at t+1 the backlog was `after`, at t it was more.
    if (t + 1 < points[points.length - 1]!.t) points.push({ t: t + 1, remaining: after });
    after += Number(rows[i]!.items);
    points.push({ t, remaining: after });
  }
  return points.reverse();
}
