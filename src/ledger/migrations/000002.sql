-- rewrap ledger, schema 2: rotation schedules and their runs.
-- A schedule holds names, paths and KEK ids only (never key material), like a campaign spec.

CREATE TABLE rewrap_schedules (
  name text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
  cron text NOT NULL,
  timezone text NOT NULL DEFAULT 'UTC',
  -- The campaign template: sources, provider, options, kind (see src/schedule/schedule-spec.ts).
  template jsonb NOT NULL,
  -- The KEK id the next run rotates (a KMS "new-key" rotation moves it to the new key).
  kek_id text NOT NULL,
  -- KMS only: 'rotate-on-demand' (new key material, same key) or 'new-key'.
  kms_rotation text NOT NULL DEFAULT 'rotate-on-demand' CHECK (kms_rotation IN ('rotate-on-demand', 'new-key')),
  -- Allowed time windows [{days, from, to, tz}]; empty = any time.
  windows jsonb NOT NULL DEFAULT '[]',
  next_run_at timestamptz NOT NULL,
  last_run_at timestamptz,
  -- Set while a run is in flight (a claim); a claim older than the run lease is taken over.
  run_claimed_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rewrap_schedules_due ON rewrap_schedules (next_run_at);

CREATE TABLE rewrap_schedule_runs (
  id bigserial PRIMARY KEY,
  schedule_name text NOT NULL REFERENCES rewrap_schedules (name) ON DELETE CASCADE,
  -- The due time that triggered it, and the (injectable) clock time it ran at.
  due_at timestamptz NOT NULL,
  ran_at timestamptz NOT NULL,
  finished_at timestamptz,
  outcome text CHECK (outcome IN ('campaign-started', 'nothing-to-move', 'campaign-active', 'failed')),
  -- KEKs as "<id>@<version>" (local) or "<key id>" / "<key id>@<material id>" (KMS).
  from_kek text,
  to_kek text,
  campaign_id text,
  detail text
);
CREATE INDEX rewrap_schedule_runs_by_schedule ON rewrap_schedule_runs (schedule_name, id DESC);
