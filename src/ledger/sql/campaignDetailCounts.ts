import type { Queryable } from '../types.ts';

export interface CampaignDetailCounts {
  /** rewrap_campaign_items rows by outcome ('pending' for no outcome yet). */
  itemsByOutcome: Record<string, number>;
  batches: number;
  progress: number;
  /** rewrap_noncurrent_versions rows in state deleted. */
  noncurrentDeleted: number;
}

/** The per-item and per-batch rows the ledger holds for a campaign (what a prune looks at). */
export async function campaignDetailCounts(db: Queryable, campaignId: string): Promise<CampaignDetailCounts> {
  const { rows } = await db.query<{ items: Record<string, number>; batches: string; progress: string; noncurrent: string }>(
    `SELECT (SELECT coalesce(jsonb_object_agg(o, n), '{}') FROM
               (SELECT coalesce(outcome, 'pending') AS o, count(*) AS n FROM rewrap_campaign_items WHERE campaign_id = $1 GROUP BY 1) x) AS items,
            (SELECT count(*) FROM rewrap_batches WHERE campaign_id = $1) AS batches,
            (SELECT count(*) FROM rewrap_progress WHERE campaign_id = $1) AS progress,
            (SELECT count(*) FROM rewrap_noncurrent_versions WHERE campaign_id = $1 AND state = 'deleted') AS noncurrent`,
    [campaignId],
  );
  const r = rows[0]!;
  return { itemsByOutcome: r.items, batches: Number(r.batches), progress: Number(r.progress), noncurrentDeleted: Number(r.noncurrent) };
}

/** Shared-dedupe rows (rewrap_dek_rewraps) of terminal campaigns: what a prune deletes of them. */
export async function countTerminalDekRewraps(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: string }>(
    `SELECT count(*) AS n FROM rewrap_dek_rewraps d JOIN rewrap_campaigns c ON c.id = d.campaign_id WHERE c.state IN ('completed', 'cancelled')`,
  );
  return Number(rows[0]!.n);
}
