/**
 * The first step of a shared rewrap of one wrapped DEK (rewrap_dek_rewraps, migration 000007):
 * one statement that either reads the campaign's result for `digest`, or claims the right to
 * compute it, or says another worker holds the claim.
 *   result   a worker already stored the new wrapping: use it (committed before this statement).
 *   claimed  this caller owns the claim until now() + claimMs: compute, then storeDekRewrap (or
 *            releaseDekRewrap on failure). A claim whose time ran out (its worker died or stalls)
 *            is taken over here.
 *   busy     another worker holds a live claim (or its claim is being written right now): wait and
 *            ask again.
 * Cost: one round trip and, for a new DEK, one row insert (an index entry of 32 bytes + the row).
 */
import type { Queryable } from '../types.ts';

export type DekRewrapClaim = { kind: 'result'; result: unknown } | { kind: 'claimed' } | { kind: 'busy' };

export async function claimDekRewrap(db: Queryable, campaignId: string, digest: Buffer, owner: string, claimMs: number): Promise<DekRewrapClaim> {
  /*
   * The outer SELECT reads the snapshot taken when the statement started, so it sees a result
   * committed before; a claim row inserted by a transaction still in flight makes ON CONFLICT wait
   * for it, then do nothing: neither claimed nor a result (busy).
   */
  const { rows } = await db.query<{ claimed: boolean; result: unknown }>(
    `WITH claim AS (
       INSERT INTO rewrap_dek_rewraps AS d (campaign_id, digest, claimed_by, claim_until)
       VALUES ($1, $2, $3, now() + $4::float8 * interval '1 millisecond')
       ON CONFLICT (campaign_id, digest) DO UPDATE
          SET claimed_by = EXCLUDED.claimed_by, claim_until = EXCLUDED.claim_until
        WHERE d.result IS NULL AND (d.claim_until IS NULL OR d.claim_until < now())
       RETURNING 1)
     SELECT EXISTS (SELECT 1 FROM claim) AS claimed,
            (SELECT result FROM rewrap_dek_rewraps WHERE campaign_id = $1 AND digest = $2) AS result`,
    [campaignId, digest, owner, claimMs],
  );
  const r = rows[0]!;
  if (r.result !== null && r.result !== undefined) return { kind: 'result', result: r.result };
  return r.claimed ? { kind: 'claimed' } : { kind: 'busy' };
}
