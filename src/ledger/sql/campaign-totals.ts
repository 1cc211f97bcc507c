/**
 * The campaign-wide rows a commit moves (counters, failure reasons, per-second progress), by the
 * exact deltas its batch computed; the last statement before COMMIT, since every commit of a
 * campaign moves the same counters row (commitBatch.ts, commitBatchRange.ts).
 * $1 campaign, $2..$4 rewrapped/skipped/failed deltas, $5 items newly done (progress),
 * $6/$7 failure reasons and their deltas, $8 planned's delta (batch form; 0 for items).
 */
export const TOTALS_SQL = `
WITH counted AS (
  UPDATE rewrap_campaign_counters k
     SET planned = k.planned + $8, rewrapped = k.rewrapped + $2, skipped = k.skipped + $3, failed = k.failed + $4
   WHERE k.campaign_id = $1
  RETURNING k.planned, k.rewrapped, k.skipped, k.failed
),
reasons AS (
  INSERT INTO rewrap_campaign_failure_reasons AS r (campaign_id, reason, items)
  SELECT $1, u.reason, u.delta FROM unnest($6::text[], $7::int[]) AS u(reason, delta)
  ON CONFLICT (campaign_id, reason) DO UPDATE SET items = r.items + EXCLUDED.items
),
progress AS (
  INSERT INTO rewrap_progress AS p (campaign_id, at_second, items)
  SELECT $1, date_trunc('second', now()), $5::int WHERE $5::int > 0
  ON CONFLICT (campaign_id, at_second) DO UPDATE SET items = p.items + EXCLUDED.items
),
pruned AS (
  DELETE FROM rewrap_progress WHERE campaign_id = $1 AND at_second < now() - interval '1 hour'
)
SELECT planned, rewrapped, skipped, failed FROM counted`;
