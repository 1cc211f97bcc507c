-- rewrap ledger, schema 9 (issue 17, point 1: a ledger that costs per batch; docs/batch-ledger-design.md).
--
-- rewrap_campaigns.ledger_form: decided when the campaign is created, never changed.
--   'items'   : one rewrap_campaign_items row per item (every campaign before schema 9).
--   'batches' : Postgres table sources only (REWRAP_LEDGER_FORM=batches). A batch is the id range
--               lo < id <= hi (lo NULL: from the start) of the rows the source's KEK filter selects
--               when the batch RUNS; no row per item is written, except for exceptions.
ALTER TABLE rewrap_campaigns ADD COLUMN ledger_form text NOT NULL DEFAULT 'items' CHECK (ledger_form IN ('items', 'batches'));

-- Batch-form columns (NULL or 0 on item-form batches).
--   rewrapped/skipped/failed: what the batch's commits counted (each commit once: counted_attempt);
--   planned_count stays item_count (the rows the plan saw in the range);
--   moved_at: the first commit that rewrapped an item of it;
--   sample: one item it rewrapped, {"key", "from", "to"}, for the retirement gate's sample;
--   keks: {"[kek id, version, material]": items} the KEKs that wrap the items it read, as its
--         commits left them (rewrapped: the target; skipped, failed: what the envelope names);
--   from_keks: the same for what its rewrapped items were under (the inventory by KEK).
ALTER TABLE rewrap_batches
  ADD COLUMN lo text,
  ADD COLUMN hi text,
  ADD COLUMN delta boolean NOT NULL DEFAULT false,
  ADD COLUMN rewrapped int NOT NULL DEFAULT 0,
  ADD COLUMN skipped int NOT NULL DEFAULT 0,
  ADD COLUMN failed int NOT NULL DEFAULT 0,
  ADD COLUMN counted_attempt int NOT NULL DEFAULT 0,
  ADD COLUMN moved_at timestamptz,
  ADD COLUMN sample jsonb,
  ADD COLUMN keks jsonb,
  ADD COLUMN from_keks jsonb;

-- Batch form: the items that are neither rewrapped nor found already moved by an earlier attempt,
-- one row each (failed, skipped with a reason). An item has at most one per campaign: a claim
-- leaves it out of its range from then on (as a per-item campaign never retries a failed item).
-- kek_*: the KEK its envelope names now, when it could be decided (the retirement gate).
CREATE TABLE rewrap_batch_exceptions (
  campaign_id text NOT NULL REFERENCES rewrap_campaigns (id) ON DELETE CASCADE,
  store_id text NOT NULL,
  item_key text NOT NULL,
  batch_no int NOT NULL,
  outcome text NOT NULL CHECK (outcome IN ('skipped', 'failed')),
  reason text NOT NULL,
  detail text,
  from_kek text,
  from_version text,
  from_material text,
  kek_id text,
  kek_version text,
  material_id text,
  at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (campaign_id, store_id, item_key)
);
CREATE INDEX rewrap_batch_exceptions_batch ON rewrap_batch_exceptions (campaign_id, batch_no);
