import type { Queryable } from '../types.ts';
import { KMS_MATERIAL_ID_PATTERN, mayBeUnderSql } from '../../core/kms-material.ts';

export interface KekUsage {
  /** Every store the inventory or the campaigns know, with what may still be under the KEK. */
  stores: {
    storeId: string;
    /** Items the inventory last saw under the KEK (failed items are counted in `failedNotMoved` instead). */
    underKek: number;
    /** Planned by a campaign draining the KEK, no outcome yet. */
    notYetMoved: number;
    /** Failed in a campaign draining the KEK, and not seen under another KEK since. */
    failedNotMoved: number;
  }[];
  /** `failedNotMoved` by store and reason code (unsupported-v1, invalid-ciphertext, ...). */
  failed: { storeId: string; reason: string; items: number }[];
  /** Up to FAILED_EXAMPLES of the `failedNotMoved` items per store (first by key), so a refusal can name them. */
  failedExamples: { storeId: string; itemKey: string }[];
  /** When the last item moved away from the KEK (in `campaignIds`), if any did. */
  lastMovedAt: Date | null;
}

/**
 * What may still use a KEK, by store. `campaignIds`: the campaigns draining it. `version` matches
 * a keyring version or a KMS key material id (an item seen under the KMS key with no material
 * recorded may be under it: mayBeUnderSql); absent, any version of the KEK counts.
 * `underNoKekReasons`: failure reasons that free an item (UNDER_NO_KEK_REASONS: it is gone or
 * has no envelope). Invariant 7: every other failure counts, an unreadable envelope included,
 * unless the inventory saw the item under another KEK at or after its newest failure (a failure
 * records the KEK its envelope still names, if one can be decided, in the same commit; a
 * batch-form failure records it on its exception row, read when no newer inventory row exists).
 * Each item counts once, at its newest failure over the campaigns.
 */
const FAILED_EXAMPLES = 5;

export async function kekUsage(db: Queryable, kek: { id: string; version?: string }, campaignIds: string[], underNoKekReasons: readonly string[]): Promise<KekUsage> {
  const under = mayBeUnderSql('$1', '$2', '$5');
  const underAtFailure = mayBeUnderSql('$1', '$2', '$5', 'f');
  const { rows } = await db.query<{ kind: 'under' | 'pending' | 'failed' | 'example'; store_id: string; reason: string | null; n: string }>(
    `WITH newest_failure AS (
       SELECT DISTINCT ON (ci.store_id, ci.item_key) ci.store_id, ci.item_key, ci.reason, ci.done_at, ci.own_kek, ci.kek_id, ci.kek_version, ci.material_id
         FROM (SELECT store_id, item_key, reason, done_at, false AS own_kek, NULL::text AS kek_id, NULL::text AS kek_version, NULL::text AS material_id
                 FROM rewrap_campaign_items
                WHERE campaign_id = ANY($3::text[]) AND outcome = 'failed'
               UNION ALL
               -- Batch form: its failed items are its exceptions, each with the KEK its envelope named when it failed.
               SELECT store_id, item_key, reason, at, true, kek_id, kek_version, material_id FROM rewrap_batch_exceptions
                WHERE campaign_id = ANY($3::text[]) AND outcome = 'failed') ci
        ORDER BY ci.store_id, ci.item_key, ci.done_at DESC),
     failed AS (
       SELECT f.store_id, f.item_key, coalesce(f.reason, 'unspecified') AS reason
         FROM newest_failure f
         LEFT JOIN rewrap_inventory v ON v.store_id = f.store_id AND v.item_key = f.item_key
        WHERE NOT (coalesce(f.reason, '') = ANY($4::text[]))
          AND CASE
                -- The inventory saw the item at or after its newest failure: what it saw decides.
                WHEN v.updated_at >= f.done_at THEN ${under}
                -- A batch-form failure (a store with no per-item inventory, or one not updated since):
                -- the KEK the exception recorded, as a per-item commit records it in the inventory;
                -- an envelope that named no KEK that could be decided blocks every KEK (cannot tell).
                WHEN f.own_kek THEN f.kek_id IS NULL OR ${underAtFailure}
                ELSE true
              END)
     SELECT 'under' AS kind, v.store_id, NULL AS reason, count(*) FILTER (WHERE ${under} AND f.item_key IS NULL) AS n
       FROM rewrap_inventory v LEFT JOIN failed f ON f.store_id = v.store_id AND f.item_key = v.item_key
      GROUP BY v.store_id
     UNION ALL
     -- Batch form: items skipped under the KEK (any campaign; no inventory row is written for them).
     SELECT 'under', v.store_id, NULL, count(*) FROM rewrap_batch_exceptions v
      WHERE v.outcome = 'skipped' AND ${under} GROUP BY v.store_id
     UNION ALL
     SELECT 'pending', store_id, NULL, count(DISTINCT item_key)
       FROM rewrap_campaign_items WHERE campaign_id = ANY($3::text[]) AND outcome IS NULL GROUP BY store_id
     UNION ALL
     -- Batch form: a range not done yet may hold anything (at least one item each: cannot tell).
     SELECT 'pending', b.store_id, NULL, sum(greatest(b.item_count - b.rewrapped - b.skipped - b.failed, 1))
       FROM rewrap_batches b JOIN rewrap_campaigns c ON c.id = b.campaign_id
      WHERE b.campaign_id = ANY($3::text[]) AND c.ledger_form = 'batches' AND b.state <> 'done' GROUP BY b.store_id
     UNION ALL
     SELECT 'failed', store_id, reason, count(*) FROM failed GROUP BY store_id, reason
     UNION ALL
     SELECT 'example', store_id, item_key, 1 FROM
       (SELECT store_id, item_key, row_number() OVER (PARTITION BY store_id ORDER BY item_key) AS rn FROM failed) e
      WHERE rn <= $6
     ORDER BY 2, 3`,
    [kek.id, kek.version ?? null, campaignIds, underNoKekReasons, KMS_MATERIAL_ID_PATTERN, FAILED_EXAMPLES],
  );
  const stores = new Map<string, KekUsage['stores'][number]>();
  const failed: KekUsage['failed'] = [];
  const failedExamples: KekUsage['failedExamples'] = [];
  for (const r of rows) {
    if (r.kind === 'example') {
      failedExamples.push({ storeId: r.store_id, itemKey: r.reason! });
      continue;
    }
    let s = stores.get(r.store_id);
    if (!s) stores.set(r.store_id, (s = { storeId: r.store_id, underKek: 0, notYetMoved: 0, failedNotMoved: 0 }));
    const n = Number(r.n);
    if (r.kind === 'under') s.underKek += n;
    else if (r.kind === 'pending') s.notYetMoved += n;
    else {
      s.failedNotMoved += n;
      failed.push({ storeId: r.store_id, reason: r.reason!, items: n });
    }
  }
  const { rows: last } = await db.query<{ at: Date | null }>(
    `SELECT greatest((SELECT max(done_at) FROM rewrap_campaign_items WHERE campaign_id = ANY($1::text[]) AND outcome = 'rewrapped'),
                     (SELECT max(done_at) FROM rewrap_batches WHERE campaign_id = ANY($1::text[]) AND moved_at IS NOT NULL)) AS at`,
    [campaignIds],
  );
  return { stores: [...stores.values()], failed, failedExamples, lastMovedAt: last[0]?.at ?? null };
}
