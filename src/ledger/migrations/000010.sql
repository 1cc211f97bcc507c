-- rewrap ledger, schema 10 (batch ledger form): rows a retried range no longer read.
--
-- unconfirmed: at a batch-form batch's last commit, when it was claimed more than once, the rows
--   the plan counted in its range that no commit counted (item_count - rewrapped - skipped - failed).
--   The range is read with the source's KEK filter, so rows an earlier claim wrote and never
--   committed (its commit or a write's reply was lost) are not read again. They are counted in
--   `skipped` (as the per-item form counts an item found already at the target on a second claim)
--   and listed as moved-unconfirmed by the exposure report; `planned` keeps the plan's count.
ALTER TABLE rewrap_batches ADD COLUMN unconfirmed int NOT NULL DEFAULT 0;
