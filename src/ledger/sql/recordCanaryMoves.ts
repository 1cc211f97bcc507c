/**
 * The canary writes items before any batch runs; their batch later finds them at the target and
 * reports a skip. Recorded here as the items' prior outcome (with from/to), the way a delta pass
 * keeps an earlier rewrap (replanItems), so that commitBatch keeps 'rewrapped' for them: the
 * counters, the completion report and the exposure report say the campaign moved them.
 * Postcondition (invariant 1): nothing is counted here; the batch's commit counts the item.
 */
import type { KekRecord, Queryable } from '../types.ts';

export interface CanaryMove {
  storeId: string;
  itemKey: string;
  from: KekRecord;
  to: KekRecord;
}

export async function recordCanaryMoves(db: Queryable, campaignId: string, moves: CanaryMove[]): Promise<void> {
  if (moves.length === 0) return;
  const col = (f: (m: CanaryMove) => string | undefined) => moves.map((m) => f(m) ?? null);
  await db.query(
    `UPDATE rewrap_campaign_items ci
        SET prior_outcome = 'rewrapped', from_kek = m.fk, from_version = m.fv, from_material = m.fm,
            to_kek = m.tk, to_version = m.tv, to_material = m.tm
       FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
            AS m(store_id, item_key, fk, fv, fm, tk, tv, tm)
      WHERE ci.campaign_id = $1 AND ci.store_id = m.store_id AND ci.item_key = m.item_key AND ci.outcome IS NULL`,
    [
      campaignId,
      col((m) => m.storeId),
      col((m) => m.itemKey),
      col((m) => m.from.id),
      col((m) => m.from.version),
      col((m) => m.from.materialId),
      col((m) => m.to.id),
      col((m) => m.to.version),
      col((m) => m.to.materialId),
    ],
  );
}
