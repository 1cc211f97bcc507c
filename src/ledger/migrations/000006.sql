-- rewrap ledger, schema 6: noncurrent object versions (issue 14). A rewrite in a versioned S3
-- bucket leaves the previous version behind, its DEK still wrapped under the old KEK. Once a
-- campaign's current items are done, its noncurrent sweep lists the versions under its source KEK
-- and, by the campaign's `noncurrentVersions` option, records them (report), deletes them by
-- version id (delete) or records that the user keeps them (keep). One row per version and
-- campaign: what the sweep saw or did, and why.
--   state: exposed (still there, under the source KEK), deleted (by rewrap, by version id),
--          locked (object lock retention or legal hold, or the delete was refused), kept (keep).
--   reason: a code (legal-hold, retention-compliance, retention-governance, delete-refused,
--           current-under-source), NULL when there is nothing to explain.
-- Item keys live here (never in metrics); no key bytes, only KEK ids and versions.
CREATE TABLE rewrap_noncurrent_versions (
  campaign_id text NOT NULL REFERENCES rewrap_campaigns (id) ON DELETE CASCADE,
  store_id text NOT NULL,
  item_key text NOT NULL,
  version_id text NOT NULL,
  kek_id text,
  kek_version text,
  state text NOT NULL CHECK (state IN ('exposed', 'deleted', 'locked', 'kept')),
  reason text,
  at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (campaign_id, store_id, item_key, version_id)
);
CREATE INDEX rewrap_noncurrent_versions_version ON rewrap_noncurrent_versions (store_id, item_key, version_id, at DESC);

-- Where a campaign's noncurrent sweep is (resumable page by page, like plan_cursor), and when it
-- finished: a campaign completes only after its sweep is done.
ALTER TABLE rewrap_campaigns ADD COLUMN noncurrent_cursor jsonb;
ALTER TABLE rewrap_campaigns ADD COLUMN noncurrent_swept_at timestamptz;
