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
