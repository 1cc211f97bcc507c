/**
 * When a campaign's items were committed, read from either ledger form, for tests that time
 * the pipeline (priority, fairness) rather than test one form.
 *   items form:   one row per item, at its done_at;
 *   batches form: one row per done batch, at its done_at, counting every item it read
 *                 (a batch finishes as a whole: a bound on "items committed after t" counts
 *                 the batches in hand whole, as it would count their items).
 * COMMITS_SQL is a subquery of (campaign_id, at, items); firstMoveSql(c) is the time of a
 * campaign's first move (item form: its first committed item; batch form: the first moved_at).
 */
export const COMMITS_SQL = `(
  SELECT i.campaign_id, i.done_at AS at, 1 AS items FROM rewrap_campaign_items i WHERE i.done_at IS NOT NULL
  UNION ALL
  SELECT b.campaign_id, b.done_at AS at, b.rewrapped + b.skipped + b.failed AS items
    FROM rewrap_batches b JOIN rewrap_campaigns c ON c.id = b.campaign_id
   WHERE c.ledger_form = 'batches' AND b.done_at IS NOT NULL)`;

/** SQL for the first move of the campaign whose id is the SQL expression `campaignId`. */
export function firstMoveSql(campaignId: string): string {
  return `(SELECT least(
     (SELECT min(i.done_at) FROM rewrap_campaign_items i WHERE i.campaign_id = ${campaignId}),
     (SELECT min(b.moved_at) FROM rewrap_batches b WHERE b.campaign_id = ${campaignId})))`;
}

/** SQL for the items of the campaigns in the SQL array expression `campaignIds` not yet committed. */
export function uncommittedSql(campaignIds: string): string {
  return `((SELECT count(*) FROM rewrap_campaign_items i WHERE i.campaign_id = ANY(${campaignIds}) AND i.outcome IS NULL)
         + (SELECT coalesce(sum(b.item_count), 0) FROM rewrap_batches b JOIN rewrap_campaigns c ON c.id = b.campaign_id
             WHERE c.ledger_form = 'batches' AND b.campaign_id = ANY(${campaignIds}) AND b.state <> 'done'))`;
}

/**
 * A campaign's items by outcome as its ledger rows record them, in either form (item rows; or
 * done and pending batches' counts), for a test that checks the counters against the rows.
 * Outcomes with no items are left out.
 */
export async function outcomeCounts(db: { query: (sql: string, values: unknown[]) => Promise<{ rows: { outcome: string; n: number }[] }> }, campaignId: string): Promise<Record<string, number>> {
  const { rows } = await db.query(
    `SELECT outcome, sum(n)::int AS n FROM (
       SELECT outcome, count(*) AS n FROM rewrap_campaign_items WHERE campaign_id = $1 AND outcome IS NOT NULL GROUP BY outcome
       UNION ALL
       SELECT o.outcome, sum(o.n) FROM rewrap_batches b
         JOIN rewrap_campaigns c ON c.id = b.campaign_id AND c.ledger_form = 'batches'
         CROSS JOIN LATERAL (VALUES ('rewrapped', b.rewrapped), ('skipped', b.skipped), ('failed', b.failed)) AS o(outcome, n)
        WHERE b.campaign_id = $1 GROUP BY o.outcome) x
      GROUP BY outcome HAVING sum(n) > 0`,
    [campaignId],
  );
  return Object.fromEntries(rows.map((r) => [r.outcome, r.n]));
}

type Rows<R> = { query: (sql: string, values: unknown[]) => Promise<{ rows: R[] }> };

/**
 * When a campaign last committed anything, in either form (item form: its last item's done_at;
 * batch form: its last done batch's done_at), or null: a test that waits out a short grace
 * period after the last move (the gate's own "last move" is no later than this).
 */
export async function lastCommitAt(db: Rows<{ at: Date | null }>, campaignId: string): Promise<Date | null> {
  const { rows } = await db.query(`SELECT max(x.at) AS at FROM ${COMMITS_SQL} x WHERE x.campaign_id = $1`, [campaignId]);
  return rows[0]?.at ?? null;
}

/**
 * One item's exception as the ledger records it, in either form: item form, its row in
 * rewrap_campaign_items (whatever its outcome); batch form, its row in rewrap_batch_exceptions
 * (failed, or skipped with a reason; an item rewrapped, or still in a range, has none there).
 * undefined when neither form has a row for it.
 */
export async function itemException(
  db: Rows<{ outcome: string | null; reason: string | null }>,
  campaignId: string,
  itemKey: string,
): Promise<{ outcome: string | null; reason: string | null } | undefined> {
  const { rows } = await db.query(
    `SELECT outcome, reason FROM rewrap_campaign_items WHERE campaign_id = $1 AND item_key = $2
     UNION ALL
     SELECT outcome, reason FROM rewrap_batch_exceptions WHERE campaign_id = $1 AND item_key = $2`,
    [campaignId, itemKey],
  );
  return rows[0];
}
