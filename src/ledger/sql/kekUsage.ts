import type { Queryable } from '../types.ts';
import { KMS_MATERIAL_ID_PATTERN, mayBeUnderSql } from '../../kek/kms-material.ts';

export interface KekUsage {
  /** Every store the inventory or the campaigns know, with what may still be under the KEK. */
  stores: {
    storeId: string;
    /** Items the inventory last saw under the KEK. */
    underKek: number;
    /** Planned by a campaign draining the KEK, no outcome yet. */
    notYetMoved: number;
    /** Failed in a campaign draining the KEK (with an envelope), and not seen under another KEK since. */
    failedNotMoved: number;
  }[];
  /** When the last item moved away from the KEK (in `campaignIds`), if any did. */
  lastMovedAt: Date | null;
}

/**
 * What may still use a KEK, by store. `campaignIds`: the campaigns draining it. `version` matches
 * a keyring version or a KMS key material id (an item seen under the KMS key with no material
 * recorded may be under it: mayBeUnderSql); absent, any version of the KEK counts.
 * `noEnvelopeReasons`: failure reasons that mean the item has no usable envelope at all (it is
 * under no KEK), so they do not count as failed-not-moved.
 */
export async function kekUsage(db: Queryable, kek: { id: string; version?: string }, campaignIds: string[], noEnvelopeReasons: readonly string[]): Promise<KekUsage> {
  const { rows } = await db.query<{ store_id: string; under: string; pending: string; failed: string }>(
    `WITH inv AS (
       SELECT store_id, count(*) FILTER (WHERE ${mayBeUnderSql('$1', '$2', '$5')}) AS under
         FROM rewrap_inventory v GROUP BY store_id),
     items AS (
       SELECT ci.store_id,
              count(*) FILTER (WHERE ci.outcome IS NULL) AS pending,
              count(*) FILTER (WHERE ci.outcome = 'failed' AND v.item_key IS NULL AND NOT (coalesce(ci.reason, '') = ANY($4::text[]))) AS failed
         FROM rewrap_campaign_items ci
         LEFT JOIN rewrap_inventory v ON v.store_id = ci.store_id AND v.item_key = ci.item_key
        WHERE ci.campaign_id = ANY($3::text[]) AND (ci.outcome IS NULL OR ci.outcome = 'failed')
        GROUP BY ci.store_id)
     SELECT coalesce(inv.store_id, items.store_id) AS store_id, coalesce(inv.under, 0) AS under,
            coalesce(items.pending, 0) AS pending, coalesce(items.failed, 0) AS failed
       FROM inv FULL JOIN items ON items.store_id = inv.store_id ORDER BY 1`,
    [kek.id, kek.version ?? null, campaignIds, noEnvelopeReasons, KMS_MATERIAL_ID_PATTERN],
  );
  const { rows: last } = await db.query<{ at: Date | null }>(
    `SELECT max(done_at) AS at FROM rewrap_campaign_items WHERE campaign_id = ANY($1::text[]) AND outcome = 'rewrapped'`,
    [campaignIds],
  );
  return {
    stores: rows.map((r) => ({ storeId: r.store_id, underKek: Number(r.under), notYetMoved: Number(r.pending), failedNotMoved: Number(r.failed) })),
    lastMovedAt: last[0]?.at ?? null,
  };
}
