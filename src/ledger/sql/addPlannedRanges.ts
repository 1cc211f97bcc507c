/**
 * Batch ledger form (docs/batch-ledger-design.md): adds one page of a Postgres table source to a
 * campaign's plan as id ranges, in ONE transaction and one statement: a batch row per `batchSize`
 * ids, (lo, hi] with lo the id before its first (the page's cursor for the first batch), the
 * counters, the cursor. No row per item is written.
 * Postcondition (as addPlannedItems): a planner that crashes and resumes from the saved cursor
 * neither loses nor doubles a range: the next page starts after the saved cursor, which is the hi
 * of the last range planned.
 * `delta`: a delta pass's ranges; their batches leave out the items the campaign already recorded
 * an exception for (BatchRange.delta).
 */
import type pg from 'pg';
import { withTransaction } from '../transaction.ts';
import { jsonParam } from '../campaign-row.ts';
import { lockForPlanning, MAX_BATCH_SIZE, validatePage } from '../plan-guard.ts';
import { ConfigError } from '../../core/errors.ts';
import type { PlanResult } from '../types.ts';

const PLAN_SQL = `
WITH ranges AS (
  SELECT $4::int + ord::int - 1 AS batch_no, lo, hi, n FROM unnest($5::text[], $6::text[], $7::int[]) WITH ORDINALITY AS u(lo, hi, n, ord)
),
new_batches AS (
  INSERT INTO rewrap_batches (campaign_id, batch_no, store_id, item_count, lo, hi, delta)
  SELECT $1, batch_no, $2, n, lo, hi, $3 FROM ranges
  RETURNING batch_no
),
counted AS (
  UPDATE rewrap_campaign_counters SET planned = planned + (SELECT coalesce(sum(n), 0) FROM ranges) WHERE campaign_id = $1
)
SELECT coalesce(array_agg(batch_no ORDER BY batch_no), '{}') AS batch_nos FROM new_batches`;

/** A separate statement, after the counters: the ledger's lock order ends with the campaign row. */
const SAVE_CURSOR_SQL = `
UPDATE rewrap_campaigns
   SET plan_cursor = $2::jsonb, plan_done = $3, plan_started_at = coalesce(plan_started_at, now()),
       next_batch_no = greatest(next_batch_no, $4), updated_at = now()
 WHERE id = $1`;

export async function addPlannedRanges(
  pool: pg.Pool,
  campaignId: string,
  storeId: string,
  /** The page's ids in id order, as the source returned them (it reads the ids after `lo`). */
  keys: readonly string[],
  batchSize: number,
  /** The id the page was read after (null: the start of the table). */
  lo: string | null,
  cursor: unknown,
  planDone: boolean,
  delta: boolean,
): Promise<PlanResult> {
  validatePage('addPlannedRanges', keys, batchSize);
  const bounds: { hi: string; n: number }[] = [];
  for (let i = 0; i < keys.length; i += batchSize) {
    const end = Math.min(i + batchSize, keys.length);
    bounds.push({ hi: keys[end - 1]!, n: end - i });
  }
  return addPlannedBounds(pool, campaignId, storeId, bounds, lo, cursor, planDone, delta);
}

/**
 * The same for a page the source already cut into batches (PgTableSource.batchBounds): each
 * batch's last id and row count, in id order, the first batch starting after `lo`.
 */
export async function addPlannedBounds(
  pool: pg.Pool,
  campaignId: string,
  storeId: string,
  bounds: readonly { hi: string; n: number }[],
  lo: string | null,
  cursor: unknown,
  planDone: boolean,
  delta: boolean,
): Promise<PlanResult> {
  const los: (string | null)[] = [];
  const his: string[] = [];
  const counts: number[] = [];
  let planned = 0;
  bounds.forEach((b, i) => {
    if (typeof b.hi !== 'string' || b.hi.length === 0) throw new ConfigError(`addPlannedBounds: bounds[${i}].hi must be a non-empty id`);
    if (!Number.isInteger(b.n) || b.n < 1 || b.n > MAX_BATCH_SIZE) throw new ConfigError(`addPlannedBounds: bounds[${i}].n must be an integer from 1 to ${MAX_BATCH_SIZE}, got ${b.n}`);
    los.push(i === 0 ? lo : bounds[i - 1]!.hi);
    his.push(b.hi);
    counts.push(b.n);
    planned += b.n;
  });
  return withTransaction(pool, async (client) => {
    const nextBatchNo = await lockForPlanning(client, 'addPlannedRanges', campaignId, storeId);
    const { rows } = await client.query<{ batch_nos: number[] }>(PLAN_SQL, [campaignId, storeId, delta, nextBatchNo, los, his, counts]);
    const batchNos = rows[0]!.batch_nos;
    const next = batchNos.length > 0 ? batchNos[batchNos.length - 1]! + 1 : nextBatchNo;
    await client.query(SAVE_CURSOR_SQL, [campaignId, jsonParam(cursor), planDone, next]);
    return { planned, requeued: 0, batchNos };
  });
}
