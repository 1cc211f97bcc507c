-- rewrap ledger, schema 1. Tables are unqualified: the schema comes from the connection's search_path.
-- Counters are maintained by exact deltas in the same transaction as the change they count; the CHECKs
-- turn any drift below zero into an error instead of a silently wrong report.

CREATE TABLE rewrap_campaigns (
  id text PRIMARY KEY CHECK (id ~ '^c[a-z2-7]{10}$'),
  name text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('routine', 'incident')),
  state text NOT NULL DEFAULT 'planning' CHECK (state IN ('planning', 'running', 'paused', 'cancelled', 'completed')),
  spec jsonb NOT NULL,
  scopes jsonb NOT NULL,
  priority int NOT NULL DEFAULT 0,
  plan_cursor jsonb,
  plan_done boolean NOT NULL DEFAULT false,
  plan_started_at timestamptz,
  -- The next batch number to hand out; written only under the campaign's planning lock.
  next_batch_no int NOT NULL DEFAULT 1,
  delta_passes int NOT NULL DEFAULT 0,
  pause_reason text,
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  finished_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rewrap_campaigns_active ON rewrap_campaigns (state) WHERE state IN ('planning', 'running', 'paused');

CREATE TABLE rewrap_batches (
  campaign_id text NOT NULL REFERENCES rewrap_campaigns (id) ON DELETE CASCADE,
  batch_no int NOT NULL,
  store_id text NOT NULL,
  item_count int NOT NULL CHECK (item_count > 0),
  state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'enqueued', 'done')),
  attempts int NOT NULL DEFAULT 0,
  -- Ownership is lease_owner; lease_until only says until when nobody else may take it over.
  lease_owner text,
  lease_until timestamptz,
  enqueued_at timestamptz,
  done_at timestamptz,
  PRIMARY KEY (campaign_id, batch_no)
);
CREATE INDEX rewrap_batches_pending ON rewrap_batches (campaign_id, batch_no) WHERE state = 'pending';
CREATE INDEX rewrap_batches_enqueued ON rewrap_batches (campaign_id, batch_no) WHERE state = 'enqueued';
CREATE INDEX rewrap_batches_leased ON rewrap_batches (campaign_id, lease_until) WHERE lease_until IS NOT NULL;

-- Plan membership and outcome in one row. No foreign key to rewrap_campaigns: planning inserts
-- millions of rows and checks the campaign once per page instead of once per row.
CREATE TABLE rewrap_campaign_items (
  campaign_id text NOT NULL,
  store_id text NOT NULL,
  item_key text NOT NULL,
  batch_no int NOT NULL,
  outcome text CHECK (outcome IN ('rewrapped', 'skipped', 'failed')),
  -- The outcome before a delta pass re-queued the item (so a re-run skip never hides a rewrap).
  prior_outcome text CHECK (prior_outcome IN ('rewrapped', 'skipped')),
  reason text,
  detail text,
  from_kek text,
  from_version text,
  from_material text,
  to_kek text,
  to_version text,
  to_material text,
  attempts int NOT NULL DEFAULT 0,
  done_at timestamptz,
  PRIMARY KEY (campaign_id, store_id, item_key)
);
CREATE INDEX rewrap_campaign_items_batch ON rewrap_campaign_items (campaign_id, batch_no);
CREATE INDEX rewrap_campaign_items_failed ON rewrap_campaign_items (campaign_id, store_id, item_key) WHERE outcome = 'failed';

CREATE TABLE rewrap_campaign_counters (
  campaign_id text PRIMARY KEY REFERENCES rewrap_campaigns (id) ON DELETE CASCADE,
  planned bigint NOT NULL DEFAULT 0 CHECK (planned >= 0),
  rewrapped bigint NOT NULL DEFAULT 0 CHECK (rewrapped >= 0),
  skipped bigint NOT NULL DEFAULT 0 CHECK (skipped >= 0),
  failed bigint NOT NULL DEFAULT 0 CHECK (failed >= 0),
  CHECK (rewrapped + skipped + failed <= planned)
);

-- Failed items per reason code (a small, fixed set), for auto-pause and reports.
CREATE TABLE rewrap_campaign_failure_reasons (
  campaign_id text NOT NULL REFERENCES rewrap_campaigns (id) ON DELETE CASCADE,
  reason text NOT NULL,
  items bigint NOT NULL,
  PRIMARY KEY (campaign_id, reason)
);

-- Which KEK wraps each item, as last observed by a campaign.
CREATE TABLE rewrap_inventory (
  store_id text NOT NULL,
  item_key text NOT NULL,
  kek_id text NOT NULL,
  kek_version text,
  material_id text,
  campaign_id text,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (store_id, item_key)
);
CREATE INDEX rewrap_inventory_kek ON rewrap_inventory (store_id, kek_id, kek_version);

-- Items that reached an outcome, per campaign and wall-clock second: the done rate is a sum over
-- at most 60 rows. Rows older than an hour are pruned by commitBatch.
CREATE TABLE rewrap_progress (
  campaign_id text NOT NULL,
  at_second timestamptz NOT NULL,
  items bigint NOT NULL,
  PRIMARY KEY (campaign_id, at_second)
);
