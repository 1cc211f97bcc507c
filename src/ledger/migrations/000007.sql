-- rewrap ledger, schema 7 (issue 17, points 3 and 4).
--
-- rewrap_dek_rewraps: one row per distinct wrapped DEK a campaign rewrapped (or is rewrapping),
-- shared by every worker process: a DEK shared by items in different batches is rewrapped once
-- per campaign, not once per worker (src/kek/shared-deduping-kek-provider.ts).
--   digest       sha256 over the source KEK, the destination KEK, the wrapped DEK, its algorithms and
--                its material description (never the plaintext DEK: that never leaves the provider).
--   claimed_by   the worker that is rewrapping it now, until claim_until; another worker waits for
--                the result, and takes the claim over only once claim_until has passed.
--   result       the new wrapped DEK under the destination KEK and its KEK refs (ciphertext, names and
--                ids only, invariant 5). Written once (first writer wins), before any store write
--                uses it, and never changed: every item sharing the DEK gets the same new wrapping.
-- Rows of a campaign are useless once it is terminal; `rewrap ledger prune` deletes them.
CREATE TABLE rewrap_dek_rewraps (
  campaign_id text NOT NULL REFERENCES rewrap_campaigns (id) ON DELETE CASCADE,
  digest bytea NOT NULL CHECK (length(digest) = 32),
  claimed_by text,
  claim_until timestamptz,
  result jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (campaign_id, digest)
);

-- rewrap_campaign_summaries: what `rewrap ledger prune` keeps of a campaign whose per-item detail
-- it archived and deleted (rewrap_campaigns, its counters and failure-reason counts stay as they
-- are). One row per pruned campaign; a second prune of it updates the row.
--   archive        where the completion report went (file:///... or s3://bucket/key), its size and
--                  S3 ETag as read back after writing; NULL when pruned without --archive.
--   outcomes       items per outcome when pruned ({"rewrapped": n, "skipped": n, "failed": n, ...}).
--   exposure       the exposure report's totals over the campaign's items (ExposureSummary.totals),
--                  with firstMovedAt / lastMovedAt.
--   rows_deleted   per-item rows deleted (rewrap_campaign_items, rewrap_batches, rewrap_progress,
--                  rewrap_noncurrent_versions in state deleted), summed over every prune of it.
CREATE TABLE rewrap_campaign_summaries (
  campaign_id text PRIMARY KEY REFERENCES rewrap_campaigns (id) ON DELETE CASCADE,
  pruned_at timestamptz NOT NULL DEFAULT now(),
  archive text,
  archive_bytes bigint,
  archive_etag text,
  outcomes jsonb NOT NULL,
  exposure jsonb NOT NULL,
  rows_deleted bigint NOT NULL DEFAULT 0
);
