/**
 * Gives up a claim of claimDekRewrap without a result (the provider call failed: a throttle, a
 * transient error, an item error, not under the source KEK): a failure is never shared, so the
 * next worker that needs the DEK claims it and tries for real. Only the owner's own claim is
 * released; a row that holds a result is never touched.
 */
import type { Queryable } from '../types.ts';

export async function releaseDekRewrap(db: Queryable, campaignId: string, digest: Buffer, owner: string): Promise<void> {
  await db.query(
    `DELETE FROM rewrap_dek_rewraps WHERE campaign_id = $1 AND digest = $2 AND claimed_by = $3 AND result IS NULL`,
    [campaignId, digest, owner],
  );
}
