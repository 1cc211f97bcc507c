/**
 * Stores the new wrapping of one wrapped DEK for the campaign (rewrap_dek_rewraps) and returns
 * the one every item must use. First writer wins: a result already there is never replaced, and
 * is returned instead of `result` (a worker whose claim ran out while it computed loses to the
 * one that took the claim over and stored first). The row is written even if it vanished
 * meanwhile. Postcondition: the returned result is committed before the caller's store write
 * uses it ("written before use"), so a crash cannot leave two new wrappings of one DEK.
 * Cost: one round trip, a second one only when another worker stored first.
 */
import type { Queryable } from '../types.ts';

export async function storeDekRewrap(db: Queryable, campaignId: string, digest: Buffer, result: unknown): Promise<unknown> {
  const { rows } = await db.query<{ result: unknown }>(
    `INSERT INTO rewrap_dek_rewraps AS d (campaign_id, digest, result)
     VALUES ($1, $2, $3::jsonb)
     ON CONFLICT (campaign_id, digest) DO UPDATE
        SET result = EXCLUDED.result, claimed_by = NULL, claim_until = NULL
      WHERE d.result IS NULL
     RETURNING result`,
    [campaignId, digest, JSON.stringify(result)],
  );
  if (rows[0]) return rows[0].result;
  const { rows: stored } = await db.query<{ result: unknown }>(
    `SELECT result FROM rewrap_dek_rewraps WHERE campaign_id = $1 AND digest = $2 AND result IS NOT NULL`,
    [campaignId, digest],
  );
  if (!stored[0]) throw new Error(`storeDekRewrap(${campaignId}): the stored result of a wrapped DEK vanished while it was being written; retry`);
  return stored[0].result;
}
