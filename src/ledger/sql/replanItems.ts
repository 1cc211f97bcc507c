/**
 * The final delta pass: keys enumerated again after the main pass. In ONE transaction:
 * - keys not in the campaign are planned (counters.planned grows);
 * - keys already 'rewrapped' or 'skipped' are re-queued in a new batch with their outcome reset
 *   (the counters of the old outcome shrink by exactly those items); the worker's re-read skips
 *   them cheaply when they are still at the target. Their old outcome is kept in prior_outcome,
 *   so a re-run that finds the item at target does not hide that this campaign rewrapped it;
 * - keys skipped as 'not-under-source' stay skipped: the provider found their DEK under another
 *   KEK (KEK columns that lie, or, in a KMS material drain, rows of the key's other materials
 *   that record none). The source selects them on every pass; checking them again would cost a
 *   provider call each per pass (twice the KMS calls of an incident on one material of a table
 *   that records no materials). A row the application rewrites under the source KEK after it
 *   was skipped is left to the next campaign or `kek retire --full` (which re-reads every
 *   item), like any row written under the old KEK after the campaign;
 * - keys that 'failed' stay failed (they are reported, not retried), and keys still waiting for
 *   an outcome stay in their batch.
 * With `progress`, the cursor and planDone are saved as addPlannedItems does.
 */
import type pg from 'pg';
import { withTransaction } from '../transaction.ts';
import { jsonParam } from '../campaign-row.ts';
import { lockForPlanning, validatePage } from '../plan-guard.ts';
import type { PlanResult } from '../types.ts';

const REPLAN_SQL = `
WITH input AS (
  SELECT u.k, u.ord FROM unnest($3::text[]) WITH ORDINALITY AS u(k, ord)
),
existing AS (
  -- One primary-key lookup (and row lock) per key, whatever the table statistics say.
  SELECT e.item_key, e.outcome, e.reason
    FROM input i
    CROSS JOIN LATERAL (SELECT ci.item_key, ci.outcome, ci.reason FROM rewrap_campaign_items ci
                         WHERE ci.campaign_id = $1 AND ci.store_id = $2 AND ci.item_key = i.k
                         LIMIT 1 FOR UPDATE) e
),
todo AS (
  SELECT i.k, e.item_key IS NULL AS is_new, e.outcome AS old_outcome,
         row_number() OVER (ORDER BY i.ord) - 1 AS rn
    FROM input i LEFT JOIN existing e ON e.item_key = i.k
   WHERE e.item_key IS NULL OR e.outcome = 'rewrapped' OR (e.outcome = 'skipped' AND e.reason IS DISTINCT FROM 'not-under-source')
),
ins AS (
  INSERT INTO rewrap_campaign_items (campaign_id, store_id, item_key, batch_no)
  SELECT $1, $2, k, $4::int + (rn / $5::int)::int FROM todo WHERE is_new ORDER BY rn
  ON CONFLICT DO NOTHING
  RETURNING batch_no
),
requeued AS (
  UPDATE rewrap_campaign_items ci
     SET batch_no = $4::int + (t.rn / $5::int)::int,
         prior_outcome = t.old_outcome, outcome = NULL, reason = NULL, detail = NULL, done_at = NULL
    FROM todo t
   WHERE NOT t.is_new AND ci.campaign_id = $1 AND ci.store_id = $2 AND ci.item_key = t.k
  RETURNING ci.batch_no, t.old_outcome
),
all_items AS (
  SELECT batch_no FROM ins UNION ALL SELECT batch_no FROM requeued
),
new_batches AS (
  INSERT INTO rewrap_batches (campaign_id, batch_no, store_id, item_count)
  SELECT $1, batch_no, $2, count(*) FROM all_items GROUP BY batch_no
  RETURNING batch_no
),
counted AS (
  UPDATE rewrap_campaign_counters
     SET planned = planned + (SELECT count(*) FROM ins),
         rewrapped = rewrapped - (SELECT count(*) FROM requeued WHERE old_outcome = 'rewrapped'),
         skipped = skipped - (SELECT count(*) FROM requeued WHERE old_outcome = 'skipped')
   WHERE campaign_id = $1
)
SELECT (SELECT count(*) FROM ins)::int AS planned,
          (SELECT count(*) FROM requeued)::int AS requeued,
       (SELECT coalesce(array_agg(batch_no ORDER BY batch_no), '{}') FROM new_batches) AS batch_nos`;

/** A separate statement, after the counters: the ledger's lock order ends with the campaign row. */
const SAVE_SQL = `
UPDATE rewrap_campaigns
   SET plan_cursor = CASE WHEN $2 THEN $3::jsonb ELSE plan_cursor END,
       plan_done = CASE WHEN $2 THEN $4 ELSE plan_done END,
       next_batch_no = greatest(next_batch_no, $5), updated_at = now()
 WHERE id = $1`;

export async function replanItems(
  pool: pg.Pool,
  campaignId: string,
  storeId: string,
  keys: readonly string[],
  batchSize: number,
  progress?: { cursor: unknown; planDone: boolean },
): Promise<PlanResult> {
  const unique = validatePage('replanItems', keys, batchSize);
  return withTransaction(pool, async (client) => {
    const nextBatchNo = await lockForPlanning(client, 'replanItems', campaignId, storeId);
    const { rows } = await client.query<{ planned: number; requeued: number; batch_nos: number[] }>(REPLAN_SQL, [campaignId, storeId, unique, nextBatchNo, batchSize]);
    const batchNos = rows[0].batch_nos;
    const next = batchNos.length > 0 ? batchNos[batchNos.length - 1] + 1 : nextBatchNo;
    await client.query(SAVE_SQL, [campaignId, progress !== undefined, jsonParam(progress?.cursor), progress?.planDone ?? false, next]);
    return { planned: rows[0].planned, requeued: rows[0].requeued, batchNos };
  });
}
