/**
 * Refreshes Postgres's statistics of the ledger's per-item tables. A table just filled by
 * planning has none until autovacuum gets to it (a minute or more), and without them the
 * planner takes a batch of 500 items for "about one row": commitBatch then finds each item by
 * scanning its whole batch (measured: ~200 ms per 500-item commit instead of ~15 ms).
 * ANALYZE samples a fixed number of rows, so it costs well under a second even at 10^7 items.
 */
import type { Queryable } from '../types.ts';

export async function refreshStatistics(db: Queryable): Promise<void> {
  await db.query('ANALYZE rewrap_campaign_items, rewrap_batches');
}
