import { CAMPAIGN_COLUMNS, toCampaign } from '../campaign-row.ts';
import type { Campaign, Queryable } from '../types.ts';

/**
 * Campaigns whose source KEK is `kek` (any version of it when `version` is absent), newest first:
 * the spec's `from`, or a source of its key map (`keyMap`, a list of { from, to }: matched by
 * jsonb containment: one test per campaign row). As for `from`, an entry whose source names no
 * version is found by the id alone.
 */
export async function campaignsFromKek(db: Queryable, kek: { id: string; version?: string }): Promise<Campaign[]> {
  const anyVersion = JSON.stringify([{ from: { id: kek.id } }]);
  const { rows } = await db.query(
    `SELECT ${CAMPAIGN_COLUMNS} FROM rewrap_campaigns
      WHERE (spec->'from'->>'id' = $1 AND ($2::text IS NULL OR spec->'from'->>'version' = $2))
         OR (spec->'keyMap' @> $3::jsonb
             AND ($2::text IS NULL
                  OR spec->'keyMap' @> jsonb_build_array(jsonb_build_object('from', jsonb_build_object('id', $1::text, 'version', $2::text)))))
      ORDER BY created_at DESC, id`,
    [kek.id, kek.version ?? null, anyVersion],
  );
  return rows.map(toCampaign);
}
